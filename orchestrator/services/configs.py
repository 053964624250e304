"""Versioned configurations per environment: chat and draft prompts and generation settings.

Each PUT stores a new version (1, 2, ... per name and environment) and makes it the active
one; a rollback makes an earlier one active again. Nothing is changed or deleted, and both
write an audit entry in the same transaction. An environment without an active version uses
the built-in defaults (version 0), which are the behaviour from before configurations.

Configurations are the deployment's, not a tenant's: every tenant's staging keys meet the
staging configuration. Requests read them through ConfigStore, a short in-process cache.
"""

import logging
import threading
import time
from typing import Any

import anyio
from pydantic import BaseModel, ValidationError
from sqlalchemy import Select, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.api.keycache import Caller
from orchestrator.db.models import ActiveConfig, ConfigVersion
from orchestrator.environments import Environment
from orchestrator.errors import Conflict, NotFound
from orchestrator.schemas.configs import CONFIGS, ChatConfig, ConfigPublic, DraftsConfig
from orchestrator.services import audit
from orchestrator.settings import OrchestratorSettings

log = logging.getLogger(__name__)

DEFAULTS = 0  # the version number of the built-in defaults
ATTEMPTS = 5  # writes that lose a race for a version number (each loss: another one landed)


def model_for(name: str) -> type[BaseModel]:
    """The configuration's model; an unknown name is a 404 naming the known ones."""
    if name not in CONFIGS:
        raise NotFound(
            f"no configuration {name!r}; known: {', '.join(CONFIGS)}",
            param="name",
            code="config_not_found",
        )
    return CONFIGS[name]


def active_version(session: Session, name: str, environment: Environment) -> ConfigVersion | None:
    return session.scalar(
        select(ConfigVersion)
        .join(ActiveConfig, ActiveConfig.version_id == ConfigVersion.id)
        .where(ActiveConfig.name == name, ActiveConfig.environment == environment.value)
    )


def public(
    name: str, environment: Environment, row: ConfigVersion | None, active_id: int | None
) -> ConfigPublic:
    """A stored version, or the defaults when `row` is None."""
    if row is None:
        return ConfigPublic(
            name=name,
            environment=environment,
            version=DEFAULTS,
            active=active_id is None,
            config=model_for(name)().model_dump(mode="json"),
            key_id=None,
            created_at=None,
        )
    return ConfigPublic(
        name=name,
        environment=environment,
        version=row.version,
        active=row.id == active_id,
        config=row.body,
        key_id=row.key_id,
        created_at=row.created_at,
    )


def current(*, session: Session, name: str, environment: Environment) -> ConfigPublic:
    model_for(name)
    row = active_version(session, name, environment)
    return public(name, environment, row, row.id if row else None)


def versions_query(name: str, environment: Environment) -> Select:
    """Every stored version of one configuration in one environment, for pagination."""
    model_for(name)
    return select(ConfigVersion).where(
        ConfigVersion.name == name, ConfigVersion.environment == environment.value
    )


def create_version(
    *,
    session: Session,
    name: str,
    environment: Environment,
    body: dict[str, Any],
    caller: Caller,
) -> ConfigPublic:
    """Validate `body` (pydantic's ValidationError: a 422), store it as the next version and
    make it active. Two writers at once: the unique version number makes one retry."""
    config = model_for(name).model_validate(body).model_dump(mode="json")

    def write() -> ConfigPublic:
        latest = session.scalar(
            select(func.max(ConfigVersion.version)).where(
                ConfigVersion.name == name, ConfigVersion.environment == environment.value
            )
        )
        row = ConfigVersion(
            name=name,
            environment=environment.value,
            version=(latest or DEFAULTS) + 1,
            body=config,
            key_id=caller.id,
        )
        session.add(row)
        session.flush()
        _activate(session, name, environment, row)
        _audit(session, caller, "config_put", name, environment, {"version": row.version})
        session.commit()
        return public(name, environment, row, row.id)

    return _retrying(session, write)


def rollback(
    *,
    session: Session,
    name: str,
    environment: Environment,
    version: int | None,
    caller: Caller,
) -> ConfigPublic:
    """Make `version` active again (default: the one numbered just below the active one;
    0: the defaults). History is kept; the rollback is audited."""
    model_for(name)

    def write() -> ConfigPublic:
        active = active_version(session, name, environment)
        was = active.version if active else DEFAULTS
        wanted = version
        if wanted is None:
            if was == DEFAULTS:
                raise Conflict(
                    f"nothing to roll back: {name} in {environment} uses the defaults",
                    param="version",
                    code="no_earlier_version",
                )
            wanted = was - 1
        row = None
        if wanted != DEFAULTS:
            row = session.scalar(
                versions_query(name, environment).where(ConfigVersion.version == wanted)
            )
            if row is None:
                raise NotFound(
                    f"no version {wanted} of {name} in {environment}",
                    param="version",
                    code="version_not_found",
                )
        _activate(session, name, environment, row)
        asked = {"version": wanted, "from_version": was}
        _audit(session, caller, "config_rollback", name, environment, asked)
        session.commit()
        return public(name, environment, row, row.id if row else None)

    return _retrying(session, write)


def _retrying(session: Session, write):
    """Run `write` again when a concurrent writer took its version number or made the
    environment's active row first; the fifth conflict in a row is raised."""
    for attempt in range(ATTEMPTS):
        try:
            return write()
        except IntegrityError:
            session.rollback()
            if attempt == ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def _activate(
    session: Session, name: str, environment: Environment, row: ConfigVersion | None
) -> None:
    version_id = row.id if row else None
    active = session.get(ActiveConfig, (name, environment.value))
    if active is None:  # two first writers at once: one gets an IntegrityError and retries
        session.add(ActiveConfig(name=name, environment=environment.value, version_id=version_id))
    else:
        active.version_id = version_id
    session.flush()


def _audit(session, caller: Caller, action, name, environment: Environment, asked: dict) -> None:
    audit.record(session, caller, action, f"config {name}@{environment.value}", asked)


def draft_options(config: DraftsConfig, settings: OrchestratorSettings) -> dict[str, Any]:
    """services.drafts.stream_draft's options from a drafts configuration."""
    return {
        "max_tokens": config.max_tokens or settings.draft_max_tokens,
        "retry_temperature": config.retry_temperature,
        "stop": tuple(config.stop),
        "instructions": config.system_prompt,
    }


class ConfigStore:
    """The active configurations, kept `ttl_s` seconds per process, so that a request does
    not read the database per call. A write through this process clears the cache at once;
    other processes see it when their entry expires. A read that began before a write does
    not put its older answer back (the same generation guard as api/keycache.py)."""

    def __init__(self, sessions: sessionmaker[Session], settings: OrchestratorSettings):
        self.sessions, self.ttl_s = sessions, settings.config_cache_s
        self._entries: dict[tuple[str, str], tuple[BaseModel, float]] = {}
        self._generation = 0
        self._lock = threading.Lock()

    async def chat(self, environment: str) -> ChatConfig:
        return await self.get("chat", environment)

    async def drafts(self, environment: str) -> DraftsConfig:
        return await self.get("drafts", environment)

    async def get(self, name: str, environment: str):
        key = (name, Environment(environment).value)
        entry = self._entries.get(key)
        if entry is not None and entry[1] >= time.monotonic():
            return entry[0]
        generation = self._generation
        config = await anyio.to_thread.run_sync(self._read, name, Environment(environment))
        with self._lock:
            if self.ttl_s > 0 and generation == self._generation:
                self._entries[key] = (config, time.monotonic() + self.ttl_s)
        return config

    def invalidate(self) -> None:
        with self._lock:
            self._generation += 1
            self._entries.clear()

    def _read(self, name: str, environment: Environment) -> BaseModel:
        model = model_for(name)
        with self.sessions() as session:
            row = active_version(session, name, environment)
        if row is None:
            return model()
        try:
            return model.model_validate(row.body)
        except ValidationError:  # stored under older rules: serve, do not fail every request
            log.exception(
                "stored %s version %d for %s no longer validates; using the defaults",
                name,
                row.version,
                environment,
            )
            return model()
