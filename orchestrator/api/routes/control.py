"""The control plane (admin scope): model status, load and unload, each audited."""

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select

from orchestrator.api.deps import AdminKey as TenantAdminKey
from orchestrator.api.deps import SessionDep, acting_tenant, require
from orchestrator.api.keycache import Caller
from orchestrator.db.models import AuditEntry
from orchestrator.errors import ApiError, unavailable
from orchestrator.schemas.control import (
    AuditPage,
    AuditRecord,
    ControlResult,
    LoadRequest,
    MemoryChange,
    ModelStatus,
    ModelStatusList,
    UnloadRequest,
)
from orchestrator.services.pagination import page
from orchestrator.services.watchdog import host_memory_used_bytes
from orchestrator.triton.control import ControlFailed, ControlUnavailable

router = APIRouter(prefix="/v1/model", tags=["control plane"])
AdminKey = Annotated[Caller, require("platform")]  # load and unload: platform admins only


@router.get("/status", response_model=ModelStatusList)
async def model_status(request: Request, _key: TenantAdminKey) -> ModelStatusList:
    """Every model in Triton's repository with its versions and states (any admin may read)."""
    return ModelStatusList(models=await _index(request))


@router.post("/load", response_model=ControlResult)
async def load_model(data: LoadRequest, request: Request, key: AdminKey) -> ControlResult:
    """Load or reload a model, optionally one version only or with a config override."""
    control = request.app.state.control
    return await _audited(
        request,
        key,
        "load",
        data.model,
        data.model_dump(exclude_none=True),
        lambda: control.load(data.model, data.version, data.config),
    )


@router.post("/unload", response_model=ControlResult)
async def unload_model(data: UnloadRequest, request: Request, key: AdminKey) -> ControlResult:
    """Unload a model; `unload_dependents` also unloads the models only it needed."""
    control = request.app.state.control
    return await _audited(
        request,
        key,
        "unload",
        data.model,
        data.model_dump(),
        lambda: control.unload(data.model, data.unload_dependents),
    )


async def _audited(request, key: Caller, action: str, model: str, asked: dict, operation):
    """Run `operation()` on a model the repository has, measure memory, write the audit row."""
    known = {m.name for m in await _index(request)}
    if model not in known:
        raise ApiError(
            404, f"no model {model!r} in Triton's repository", param="model", code="model_not_found"
        )
    before = host_memory_used_bytes()
    error = None
    try:
        await operation()
    except ControlUnavailable:
        error = "Triton is unreachable"
    except ControlFailed as failure:
        error = str(failure)
    after = host_memory_used_bytes()
    await run_in_threadpool(_audit, request, key, action, model, asked, error)
    if error == "Triton is unreachable":
        raise unavailable(f"{error}; the {action} was not done")
    if error is not None:
        raise ApiError(
            422,
            f"Triton could not {action} {model!r}: {error}",
            param="model",
            code=f"{action}_failed",
        )
    request.app.state.metrics.model_memory_delta.labels(model, action).set(after - before)
    versions = [m for m in await _index(request) if m.name == model]
    return ControlResult(
        model=model,
        action=action,
        result="ok",
        models=versions,
        memory=MemoryChange(before_bytes=before, after_bytes=after, delta_bytes=after - before),
    )


def _audit(request, key: Caller, action: str, model: str, asked: dict, error: str | None):
    with request.app.state.sessions() as session:
        session.add(
            AuditEntry(
                key_id=key.id,
                tenant_id=key.tenant_id,
                action=action,
                target=model,
                request=asked,
                result="error" if error else "ok",
                detail=error,
            )
        )
        session.commit()


async def _index(request: Request) -> list[ModelStatus]:
    try:
        states = await request.app.state.control.index()
    except ControlUnavailable:
        raise unavailable("Triton is unreachable") from None
    return [
        ModelStatus(name=s.name, version=s.version, state=s.state, reason=s.reason) for s in states
    ]


@router.get("/audit", response_model=AuditPage)
def audit_log(
    session: SessionDep,
    key: TenantAdminKey,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> AuditPage:
    """Who loaded or unloaded what, when, and how it went; newest first. A tenant admin sees
    its own tenant's entries only."""
    query = select(AuditEntry)
    if (confined := acting_tenant(key)) is not None:
        query = query.where(AuditEntry.tenant_id == confined)
    rows, next_cursor = page(session, query, AuditEntry.id, limit, cursor)
    return AuditPage(
        data=[AuditRecord.model_validate(r, from_attributes=True) for r in rows],
        next_cursor=next_cursor,
    )
