"""The control plane (admin scope): model status, load and unload, versions' rollout
(register, canary, promote, rollback) and retraining runs; every change is audited."""

from typing import Annotated

from fastapi import APIRouter, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select

from contracts.versions import BASE_VERSION
from orchestrator.api.deps import AdminKey as TenantAdminKey
from orchestrator.api.deps import SessionDep, acting_tenant, require
from orchestrator.api.keycache import Caller
from orchestrator.api.params import IdPath
from orchestrator.db.models import AuditEntry, RetrainRun
from orchestrator.errors import NotFound
from orchestrator.schemas.control import (
    AuditPage,
    AuditRecord,
    CanaryRequest,
    ControlResult,
    LoadRequest,
    ModelRequest,
    ModelStatusList,
    ModelVersionList,
    ModelVersionPublic,
    ReplicaServing,
    RetrainRequest,
    RetrainRunList,
    RetrainRunPublic,
    UnloadRequest,
    VersionRegister,
)
from orchestrator.services import versions
from orchestrator.services.control import VERSIONED_STEPS, ControlService
from orchestrator.services.pagination import page
from orchestrator.services.retrain_runs import RetrainOptions

router = APIRouter(prefix="/v1/model", tags=["control plane"])
# load, unload and versions' rollout: platform admins only, since a model serves every tenant
AdminKey = Annotated[Caller, require("platform")]
ModelQuery = Annotated[str, Query(min_length=1, max_length=200, examples=["ticket_triage"])]


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


@router.get("/versions", response_model=ModelVersionList)
def model_versions(
    session: SessionDep, _key: TenantAdminKey, model: ModelQuery
) -> ModelVersionList:
    """The model's versions with their rollout state and canary share, newest first; a model
    never changed here shows its implicit production version 1 (any admin may read)."""
    return _version_list(model, versions.listed(session, model))


@router.post("/versions", status_code=status.HTTP_201_CREATED, response_model=ModelVersionList)
async def register_version(
    data: VersionRegister, request: Request, key: AdminKey
) -> ModelVersionList:
    """Register a version as a candidate (staging keys meet it at once). A triage or x-ray
    version other than 1 must be published into Triton's repository (`python -m export
    publish`, `python -m export xray-publish`): Triton is asked to load it first, and a
    version it cannot serve is refused (409)."""
    replicas = await _serve(request, data.model, data.version)

    def move(rows):
        return versions.register(rows, data.model, data.version, data.note)

    changed = await _change(request, key, "version_register", data, move)
    return changed.model_copy(update={"replicas": replicas})


@router.post("/canary", response_model=ModelVersionList)
async def canary(data: CanaryRequest, request: Request, key: AdminKey) -> ModelVersionList:
    """Send `percent` of production traffic to a candidate, the same texts always; asked of
    the canary again, change its share. Staging keys meet the canary whole. Triton is asked
    to serve it first (a Triton restarted since the registration loads it again)."""
    replicas = await _serve(request, data.model, data.version)

    def move(rows):
        versions.start_canary(rows, data.model, data.version, data.percent)

    changed = await _change(request, key, "canary", data, move)
    return changed.model_copy(update={"replicas": replicas})


@router.post("/promote", response_model=ModelVersionList)
async def promote(data: ModelRequest, request: Request, key: AdminKey) -> ModelVersionList:
    """The canary becomes production for all traffic; the previous production is archived."""

    def move(rows):
        versions.promote(rows, data.model)

    return await _change(request, key, "promote", data, move)


@router.post("/rollback", response_model=ModelVersionList)
async def rollback(data: ModelRequest, request: Request, key: AdminKey) -> ModelVersionList:
    """Roll back the canary (production stays); without one, production, to the version
    archived most recently. 409 when there is nothing to roll back to."""

    def move(rows):
        versions.rollback(rows, data.model)

    return await _change(request, key, "rollback", data, move)


@router.post("/retrain", status_code=status.HTTP_202_ACCEPTED, response_model=RetrainRunPublic)
async def start_retrain(data: RetrainRequest, request: Request, key: AdminKey) -> RetrainRunPublic:
    """Start `export dataset` then `export retrain` (then `export publish` if asked) as a job;
    follow it at GET /v1/model/retrain/{id}. One run at a time (409); audited."""
    options = RetrainOptions(**data.model_dump())
    run = await request.app.state.retrain_runs.start(key, options)
    return RetrainRunPublic.model_validate(run, from_attributes=True)


@router.get("/retrain", response_model=RetrainRunList)
def retrain_runs(
    session: SessionDep, _key: AdminKey, limit: Annotated[int, Query(ge=1, le=100)] = 20
) -> RetrainRunList:
    """The latest retrain runs, newest first."""
    rows = session.scalars(select(RetrainRun).order_by(RetrainRun.id.desc()).limit(limit))
    return RetrainRunList(
        data=[RetrainRunPublic.model_validate(r, from_attributes=True) for r in rows]
    )


@router.get("/retrain/{run_id}", response_model=RetrainRunPublic)
def retrain_run(run_id: IdPath, session: SessionDep, _key: AdminKey) -> RetrainRunPublic:
    """A retrain run: its step and message while it runs, its report when it ends."""
    run = session.get(RetrainRun, run_id)
    if run is None:
        raise NotFound(f"no retrain run {run_id}", param="run_id", code="run_not_found")
    return RetrainRunPublic.model_validate(run, from_attributes=True)


async def _serve(request: Request, model: str, version: int) -> list[ReplicaServing] | None:
    """Every Triton replica loaded with `version` of a versioned model, triage or the x-ray
    (None: nothing to load)."""
    if model in VERSIONED_STEPS and version != BASE_VERSION:
        return await _service(request).serve_version(model, version)
    return None


async def _change(request: Request, key: Caller, action: str, data, move) -> ModelVersionList:
    def run() -> ModelVersionList:
        with request.app.state.sessions() as session:
            versions.change(
                session=session,
                model=data.model,
                caller=key,
                action=action,
                asked=data.model_dump(),
                move=move,
            )
            return _version_list(data.model, versions.listed(session, data.model))

    try:
        listed = await run_in_threadpool(run)
    finally:  # also after a refusal: a reader must not keep what it may have missed
        request.app.state.versions.invalidate()
    await request.app.state.rollout_recorder.record(data.model)  # committed; never raises
    return listed


def _version_list(model: str, rows) -> ModelVersionList:
    return ModelVersionList(
        model=model,
        data=[ModelVersionPublic.model_validate(r, from_attributes=True) for r in rows],
    )


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
