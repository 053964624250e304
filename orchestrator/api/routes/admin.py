"""Tenants and API keys. Platform admins (`platform`) act on every tenant; tenant admins
(`admin`) on their own only, and another tenant's keys look to them as if they did not exist."""

from typing import Annotated

from fastapi import APIRouter, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.exc import IntegrityError

from orchestrator.api.deps import AdminKey, PlatformKey, SessionDep, acting_tenant, require
from orchestrator.api.params import IdPath, IdQuery
from orchestrator.db.models import ApiKey
from orchestrator.errors import ApiError
from orchestrator.schemas.admin import (
    KeyCreate,
    KeyCreated,
    KeyPage,
    KeyPublic,
    TenantCreate,
    TenantCreated,
)
from orchestrator.services import keys
from orchestrator.services.pagination import page

router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[require("admin")])


@router.post("/tenants", status_code=status.HTTP_201_CREATED, response_model=TenantCreated)
def create_tenant(data: TenantCreate, session: SessionDep, _key: PlatformKey):
    """A new customer tenant (platform admins only)."""
    try:
        return keys.create_tenant(session=session, name=data.name)
    except IntegrityError:
        raise ApiError(409, f"a tenant named {data.name!r} exists", param="name") from None


@router.post("/tenants/{tenant_id}/webhook-secret", response_model=TenantCreated)
def rotate_webhook_secret(tenant_id: IdPath, session: SessionDep, key: AdminKey):
    """A new webhook secret for the tenant; the old one stops working at once."""
    tenant = keys.rotate_webhook_secret(
        session=session, tenant_id=tenant_id, acting_tenant=acting_tenant(key)
    )
    if tenant is None:
        raise ApiError(404, f"no tenant {tenant_id}", param="tenant_id")
    return tenant


@router.get("/keys", response_model=KeyPage)
def list_keys(
    session: SessionDep,
    key: AdminKey,
    tenant_id: IdQuery | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> KeyPage:
    """Keys, newest first (never the keys themselves): a tenant admin sees its tenant's only."""
    confined = acting_tenant(key)
    if confined is not None and tenant_id not in (None, confined):
        raise ApiError(404, f"no tenant {tenant_id}", param="tenant_id")
    query = keys.keys_query(tenant_id=confined if confined is not None else tenant_id)
    rows, next_cursor = page(session, query, ApiKey.id, limit, cursor)
    return KeyPage(
        data=[
            KeyPublic(
                id=r.id,
                tenant_id=r.tenant_id,
                scopes=sorted(r.scope_set),
                origin=r.origin,
                environment=r.environment,
                created_at=r.created_at,
                revoked_at=r.revoked_at,
            )
            for r in rows
        ],
        next_cursor=next_cursor,
    )


@router.post("/keys", status_code=status.HTTP_201_CREATED, response_model=KeyCreated)
def create_key(data: KeyCreate, session: SessionDep, key: AdminKey):
    """A key for a tenant (default: the caller's); a tenant admin may only make its own's."""
    tenant_id = data.tenant_id or key.tenant_id
    confined = acting_tenant(key)
    if confined is not None and tenant_id != confined:
        raise ApiError(
            403,
            "an admin key manages its own tenant's keys only",
            type="permission_error",
            param="tenant_id",
            code="other_tenant",
        )
    try:
        created = keys.create_key(
            session=session, tenant_id=tenant_id, scopes=data.scopes, environment=data.environment
        )
    except keys.NotAllowed as refused:
        raise ApiError(422, str(refused), param="scopes", code="platform_scope") from None
    if created is None:
        raise ApiError(404, f"no tenant {tenant_id}", param="tenant_id")
    record, plain = created
    return KeyCreated(
        id=record.id,
        tenant_id=record.tenant_id,
        scopes=data.scopes,
        environment=record.environment,
        key=plain,
    )


@router.delete("/keys/{key_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_key(key_id: IdPath, session: SessionDep, request: Request, key: AdminKey):
    """Revoke a key: it stops working at once here, within about a second on other replicas."""
    revoked = await run_in_threadpool(
        keys.revoke_key, session=session, key_id=key_id, acting_tenant=acting_tenant(key)
    )
    if not revoked:
        raise ApiError(404, f"no active key {key_id}", param="key_id")
    request.app.state.key_cache.forget(key_id)
    await request.app.state.revocations.publish()
