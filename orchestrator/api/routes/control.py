"""The control plane (admin scope): model status, load and unload, each audited."""

from typing import Annotated

from fastapi import APIRouter, Query, Request
from sqlalchemy import select

from orchestrator.api.deps import AdminKey as TenantAdminKey
from orchestrator.api.deps import SessionDep, acting_tenant, require
from orchestrator.api.keycache import Caller
from orchestrator.db.models import AuditEntry
from orchestrator.schemas.control import (
    AuditPage,
    AuditRecord,
    ControlResult,
    LoadRequest,
    ModelStatusList,
    UnloadRequest,
)
from orchestrator.services.control import ControlService
from orchestrator.services.pagination import page

router = APIRouter(prefix="/v1/model", tags=["control plane"])
AdminKey = Annotated[Caller, require("platform")]  # load and unload: platform admins only


def _service(request: Request) -> ControlService:
    return request.app.state.control_service


@router.get("/status", response_model=ModelStatusList)
async def model_status(request: Request, _key: TenantAdminKey) -> ModelStatusList:
    """Every model in Triton's repository with its versions and states (any admin may read)."""
    return ModelStatusList(models=await _service(request).status())


@router.post("/load", response_model=ControlResult)
async def load_model(data: LoadRequest, request: Request, key: AdminKey) -> ControlResult:
    """Load or reload a model, optionally one version only or with an allowed config override."""
    return await _service(request).load(key, data)


@router.post("/unload", response_model=ControlResult)
async def unload_model(data: UnloadRequest, request: Request, key: AdminKey) -> ControlResult:
    """Unload a model and wait until its processes are gone; the report says what was freed.

    `unload_dependents` also unloads the models only it needed.
    """
    return await _service(request).unload(key, data)


@router.get("/audit", response_model=AuditPage)
def audit_log(
    session: SessionDep,
    key: TenantAdminKey,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> AuditPage:
    """Who loaded or unloaded what, or changed a configuration (config_put, config_rollback),
    when, and how it went; newest first. A tenant admin sees its own tenant's entries only."""
    query = select(AuditEntry)
    if (confined := acting_tenant(key)) is not None:
        query = query.where(AuditEntry.tenant_id == confined)
    rows, next_cursor = page(session, query, AuditEntry.id, limit, cursor)
    return AuditPage(
        data=[AuditRecord.model_validate(r, from_attributes=True) for r in rows],
        next_cursor=next_cursor,
    )
