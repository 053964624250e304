"""Served model versions: their rollout states, the moves between them, and which version a
request meets.

Each version of a Triton model (the ensemble's version folder) is in one state:

    candidate --canary--> canary --promote--> production --promote of the next--> archived
                          canary --rollback-> rolled_back
                                  production --rollback (no canary)--> rolled_back,
                                  and the most recently archived version is production again

`canary` may be asked again of the current canary to change its share. Any other move is a
409 naming the reason. A model without rows is served as version 1 in production, as it was
before versions were tracked: the first change writes that row (`IMPLICIT`).

Triton does not split traffic, so the orchestrator does (`choose_version`): production keys
send the canary a stable share of texts, chosen by a hash of the text, so that the same text
(a ticket retried, a text sent twice) always meets the same version while the rollout stands;
staging keys meet the canary, else the newest candidate, else production. Requests read the
states through VersionStore, a short in-process cache, not the database.
"""

import hashlib
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

import anyio
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.api.keycache import Caller
from orchestrator.db.models import ModelVersion
from orchestrator.environments import Environment
from orchestrator.errors import Conflict, InvalidInput, NotFound
from orchestrator.services import audit

IMPLICIT = 1  # the version a model without rows is served as
NEVER = datetime.min.replace(tzinfo=UTC)  # a row not written yet: archived before any other
ATTEMPTS = 3  # writes that lose a race (two first writes of one model's implicit row)


class VersionState(StrEnum):
    candidate = "candidate"
    canary = "canary"
    production = "production"
    archived = "archived"
    rolled_back = "rolled_back"


@dataclass(frozen=True)
class Routing:
    """What routing needs of one model's versions."""

    production: int = IMPLICIT
    canary: int | None = None
    percent: int = 0  # of production traffic sent to the canary
    candidate: int | None = None  # the newest candidate


# ---- routing -------------------------------------------------------------------------------
def bucket(key_text: str) -> int:
    """0..99, the same for the same text in every process (Python's hash() is salted)."""
    digest = hashlib.sha256(key_text.encode()).digest()
    return int.from_bytes(digest[:8], "big") % 100


def choose_version(key_text: str, environment: str, routing: Routing) -> int:
    """The version that answers `key_text` for a key of `environment`."""
    if environment == Environment.staging:
        if routing.canary is not None:
            return routing.canary
        return routing.candidate if routing.candidate is not None else routing.production
    if routing.canary is not None and bucket(key_text) < routing.percent:
        return routing.canary
    return routing.production


def routing_of(rows: Sequence[ModelVersion]) -> Routing:
    if not rows:
        return Routing()
    canary = _one(rows, VersionState.canary)
    production = _one(rows, VersionState.production)
    candidates = [r.version for r in rows if r.state == VersionState.candidate]
    return Routing(
        production=production.version if production is not None else IMPLICIT,
        canary=canary.version if canary is not None else None,
        percent=(canary.canary_percent or 0) if canary is not None else 0,
        candidate=max(candidates) if candidates else None,
    )


# ---- transitions: on one model's rows, no database ------------------------------------------
def _one(rows: Sequence[ModelVersion], state: VersionState) -> ModelVersion | None:
    return next((r for r in rows if r.state == state), None)


def _find(rows: Sequence[ModelVersion], model: str, version: int) -> ModelVersion:
    row = next((r for r in rows if r.version == version), None)
    if row is None:
        raise NotFound(
            f"no version {version} of {model!r}; register it first (POST /v1/model/versions)",
            param="version",
            code="version_not_found",
        )
    return row


def implicit_row(model: str) -> ModelVersion:
    return ModelVersion(
        model=model,
        version=IMPLICIT,
        state=VersionState.production.value,
        note="served before versions were tracked",
    )


def register(rows: Sequence[ModelVersion], model: str, version: int, note: str | None):
    """A new candidate row (the caller adds it); a known version number is a 409."""
    if any(r.version == version for r in rows):
        existing = next(r for r in rows if r.version == version)
        raise Conflict(
            f"version {version} of {model!r} is already registered ({existing.state})",
            param="version",
            code="version_exists",
        )
    return ModelVersion(model=model, version=version, state=VersionState.candidate.value, note=note)


def start_canary(rows: Sequence[ModelVersion], model: str, version: int, percent: int):
    """Make a candidate the canary taking `percent` of production traffic, or change the
    current canary's share."""
    if not 1 <= percent <= 99:
        raise InvalidInput("percent must be from 1 to 99", param="percent")
    row = _find(rows, model, version)
    current = _one(rows, VersionState.canary)
    if current is not None and current is not row:
        raise Conflict(
            f"version {current.version} of {model!r} is the canary; promote or roll it back first",
            param="version",
            code="canary_exists",
        )
    if row.state not in (VersionState.candidate, VersionState.canary):
        raise Conflict(
            f"version {version} of {model!r} is {row.state}; only a candidate can become the "
            "canary",
            param="version",
            code="invalid_transition",
        )
    row.state, row.canary_percent = VersionState.canary.value, percent
    return row


def promote(rows: Sequence[ModelVersion], model: str) -> ModelVersion:
    """The canary becomes production; the production it replaces is archived."""
    canary = _one(rows, VersionState.canary)
    if canary is None:
        raise Conflict(
            f"{model!r} has no canary to promote; start one (POST /v1/model/canary)",
            param="model",
            code="no_canary",
        )
    production = _one(rows, VersionState.production)
    if production is not None:
        production.state = VersionState.archived.value
    canary.state, canary.canary_percent = VersionState.production.value, None
    return canary


def rollback(rows: Sequence[ModelVersion], model: str) -> ModelVersion:
    """Roll the canary back if there is one (production stays); else roll production back
    to the version archived most recently. The row rolled back is returned."""
    canary = _one(rows, VersionState.canary)
    if canary is not None:
        canary.state, canary.canary_percent = VersionState.rolled_back.value, None
        return canary
    production = _one(rows, VersionState.production)
    archived = [r for r in rows if r.state == VersionState.archived]
    if production is None or not archived:
        raise Conflict(
            f"nothing to roll back to: {model!r} has no canary and no archived version",
            param="model",
            code="nothing_to_roll_back",
        )
    previous = max(archived, key=lambda r: (r.updated_at or NEVER, r.version))
    production.state = VersionState.rolled_back.value
    previous.state = VersionState.production.value
    return production


# ---- the database ----------------------------------------------------------------------------
def model_rows(session: Session, model: str, *, for_update: bool = False) -> list[ModelVersion]:
    query = select(ModelVersion).where(ModelVersion.model == model).order_by(ModelVersion.version)
    if for_update:  # two admins moving one model: the second waits and sees the first's move
        query = query.with_for_update()
    return list(session.scalars(query))


def listed(session: Session, model: str) -> list[ModelVersion]:
    """Every version of `model`, newest first; without rows, the implicit production one
    (not written: reading changes nothing)."""
    rows = model_rows(session, model) or [implicit_row(model)]
    return sorted(rows, key=lambda r: r.version, reverse=True)


def change(*, session: Session, model: str, caller: Caller | None, action: str, asked: dict, move):
    """Apply `move(rows)` to `model`'s rows (seeded with the implicit production row when
    there are none), audit it (`caller` None: by the orchestrator itself) and commit; a
    refusal is audited as an error, then raised."""
    for attempt in range(ATTEMPTS):
        try:
            rows = model_rows(session, model, for_update=True)
            if not rows:
                rows = [implicit_row(model)]
                session.add(rows[0])
            added = move(rows)
            if added is not None and added not in rows:
                session.add(added)
            _audit(session, caller, action, model, asked, "ok", None)
            session.commit()
            return
        except (Conflict, NotFound, InvalidInput) as refusal:
            session.rollback()
            _audit(session, caller, action, model, asked, "error", refusal.message)
            session.commit()
            raise
        except IntegrityError:  # another writer seeded the model or took the number first
            session.rollback()
            if attempt == ATTEMPTS - 1:
                raise


def _audit(
    session, caller: Caller | None, action: str, model: str, asked: dict, result, detail
) -> None:
    audit.record(session, caller, action, model, asked, result, detail)


class VersionStore:
    """Each model's Routing, kept `ttl_s` seconds per process so that triage does not read
    the database per request. A write through this process clears it at once; other
    processes (replicas, a separate worker) follow when their entry expires. A read begun
    before a write does not put its older answer back (as services/configs.ConfigStore)."""

    def __init__(self, sessions: sessionmaker[Session], ttl_s: float):
        self.sessions, self.ttl_s = sessions, ttl_s
        self._entries: dict[str, tuple[Routing, float]] = {}
        self._generation = 0
        self._lock = threading.Lock()

    async def routing(self, model: str) -> Routing:
        entry = self._entries.get(model)
        if entry is not None and entry[1] >= time.monotonic():
            return entry[0]
        generation = self._generation
        routing = await anyio.to_thread.run_sync(self._read, model)
        with self._lock:
            if self.ttl_s > 0 and generation == self._generation:
                self._entries[model] = (routing, time.monotonic() + self.ttl_s)
        return routing

    def invalidate(self) -> None:
        with self._lock:
            self._generation += 1
            self._entries.clear()

    def _read(self, model: str) -> Routing:
        with self.sessions() as session:
            return routing_of(model_rows(session, model))
