"""Tenants and API keys (admin scope)."""

from fastapi import APIRouter, Request, status
from sqlalchemy.exc import IntegrityError

from orchestrator.api.deps import SessionDep, require
from orchestrator.errors import ApiError
from orchestrator.schemas.admin import KeyCreate, KeyCreated, TenantCreate, TenantCreated
from orchestrator.services import keys

router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[require("admin")])


@router.post("/tenants", status_code=status.HTTP_201_CREATED, response_model=TenantCreated)
def create_tenant(data: TenantCreate, session: SessionDep):
    try:
        return keys.create_tenant(session=session, name=data.name)
    except IntegrityError:
        raise ApiError(409, f"a tenant named {data.name!r} exists", param="name") from None


@router.post("/tenants/{tenant_id}/webhook-secret", response_model=TenantCreated)
def rotate_webhook_secret(tenant_id: int, session: SessionDep):
    """A new webhook secret for the tenant; the old one stops working at once."""
    tenant = keys.rotate_webhook_secret(session=session, tenant_id=tenant_id)
    if tenant is None:
        raise ApiError(404, f"no tenant {tenant_id}", param="tenant_id")
    return tenant


@router.post("/keys", status_code=status.HTTP_201_CREATED, response_model=KeyCreated)
def create_key(data: KeyCreate, session: SessionDep):
    created = keys.create_key(session=session, tenant_id=data.tenant_id, scopes=data.scopes)
    if created is None:
        raise ApiError(404, f"no tenant {data.tenant_id}", param="tenant_id")
    record, key = created
    return KeyCreated(id=record.id, tenant_id=record.tenant_id, scopes=data.scopes, key=key)


@router.delete("/keys/{key_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_key(key_id: int, session: SessionDep, request: Request) -> None:
    if not keys.revoke_key(session=session, key_id=key_id):
        raise ApiError(404, f"no active key {key_id}", param="key_id")
    request.app.state.key_cache.forget(key_id)
