"""Versioned configurations per environment (services/configs.py): any admin reads them;
platform admins write them, since one configuration serves every tenant."""

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Request, status
from fastapi.concurrency import run_in_threadpool

from orchestrator.api.deps import AdminKey, PlatformKey, SessionDep, require
from orchestrator.db.models import ConfigVersion
from orchestrator.environments import DEFAULT_ENVIRONMENT, Environment
from orchestrator.schemas.configs import CONFIGS, ConfigPage, ConfigPublic, RollbackRequest
from orchestrator.services import configs
from orchestrator.services.pagination import page

router = APIRouter(prefix="/v1/configs", tags=["configurations"], dependencies=[require("admin")])

ConfigName = Annotated[str, Path(max_length=40, description=f"One of: {', '.join(CONFIGS)}")]
EnvironmentQuery = Annotated[
    Environment, Query(description="Whose configuration: production's or staging's")
]
CONFIG_BODY = Body(
    description="The whole configuration; fields left out take their defaults. "
    "chat: system_prompt, temperature, max_tokens, stop. "
    "drafts: system_prompt, retry_temperature, max_tokens, stop. Other fields: 422.",
    examples=[{"system_prompt": "You are Northwind Bank's support assistant.", "temperature": 0.3}],
)


@router.get("/{name}", response_model=ConfigPublic)
def get_config(
    name: ConfigName,
    session: SessionDep,
    _key: AdminKey,
    environment: EnvironmentQuery = DEFAULT_ENVIRONMENT,
) -> ConfigPublic:
    """The environment's active version, or the built-in defaults as version 0."""
    return configs.current(session=session, name=name, environment=environment)


@router.put("/{name}", status_code=status.HTTP_201_CREATED, response_model=ConfigPublic)
async def put_config(
    name: ConfigName,
    request: Request,
    key: PlatformKey,
    body: Annotated[dict[str, Any], CONFIG_BODY],
    environment: EnvironmentQuery = DEFAULT_ENVIRONMENT,
) -> ConfigPublic:
    """Store a new version and make it active (audited); earlier versions stay."""
    return await _write(
        request, configs.create_version, name=name, environment=environment, body=body, caller=key
    )


@router.get("/{name}/versions", response_model=ConfigPage)
def list_versions(
    name: ConfigName,
    session: SessionDep,
    _key: AdminKey,
    environment: EnvironmentQuery = DEFAULT_ENVIRONMENT,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> ConfigPage:
    """Every stored version, newest first; `active` marks the one in use."""
    query = configs.versions_query(name, environment)
    rows, next_cursor = page(session, query, ConfigVersion.id, limit, cursor)
    active = configs.active_version(session, name, environment)
    active_id = active.id if active else None
    return ConfigPage(
        data=[configs.public(name, environment, r, active_id) for r in rows],
        next_cursor=next_cursor,
    )


@router.post("/{name}/rollback", response_model=ConfigPublic)
async def rollback_config(
    name: ConfigName,
    request: Request,
    key: PlatformKey,
    data: Annotated[RollbackRequest | None, Body()] = None,
    environment: EnvironmentQuery = DEFAULT_ENVIRONMENT,
) -> ConfigPublic:
    """Make an earlier version active again (audited); default: the one just below the
    active one; `{"version": 0}`: the defaults."""
    version = data.version if data is not None else None
    return await _write(
        request, configs.rollback, name=name, environment=environment, version=version, caller=key
    )


async def _write(request: Request, write, **arguments) -> ConfigPublic:
    def run() -> ConfigPublic:
        with request.app.state.sessions() as session:
            return write(session=session, **arguments)

    try:
        return await run_in_threadpool(run)
    finally:  # also after a failed write: a reader must not keep what it may have missed
        request.app.state.configs.invalidate()
