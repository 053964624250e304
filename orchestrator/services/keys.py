"""Tenants and keys: creation, revocation, and the admin key given at start."""

from sqlalchemy import select
from sqlalchemy.orm import Session

from orchestrator.db.models import ApiKey, Tenant, utcnow
from orchestrator.services.security import SCOPES, digest, new_key
from orchestrator.services.webhooks import new_secret

ADMIN_TENANT = "admin"


def create_tenant(*, session: Session, name: str) -> Tenant:
    tenant = Tenant(name=name, webhook_secret=new_secret())
    session.add(tenant)
    session.commit()
    return tenant


def create_key(
    *, session: Session, tenant_id: int, scopes: list[str], key: str | None = None
) -> tuple[ApiKey, str] | None:
    """The new record and the plain key (shown once), or None for an unknown tenant."""
    if session.get(Tenant, tenant_id) is None:
        return None
    key = key or new_key()
    record = ApiKey(tenant_id=tenant_id, digest=digest(key), scopes=" ".join(sorted(scopes)))
    session.add(record)
    session.commit()
    return record, key


def rotate_webhook_secret(*, session: Session, tenant_id: int) -> Tenant | None:
    tenant = session.get(Tenant, tenant_id)
    if tenant is not None:
        tenant.webhook_secret = new_secret()
        session.commit()
    return tenant


def revoke_key(*, session: Session, key_id: int) -> bool:
    record = session.get(ApiKey, key_id)
    if record is None or record.revoked_at is not None:
        return False
    record.revoked_at = utcnow()
    session.commit()
    return True


def ensure_admin_key(*, session: Session, key: str) -> None:
    """Make `key` a working admin key (idempotent across restarts)."""
    if session.scalar(select(ApiKey).where(ApiKey.digest == digest(key))) is not None:
        return
    tenant = session.scalar(select(Tenant).where(Tenant.name == ADMIN_TENANT))
    if tenant is None:
        tenant = create_tenant(session=session, name=ADMIN_TENANT)
    create_key(session=session, tenant_id=tenant.id, scopes=list(SCOPES), key=key)
