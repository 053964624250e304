"""Tenants and keys: creation, revocation, listing, and the bootstrap key given at start.

Who may do what is decided here, so that every caller (HTTP routes, the CLI) gets the same
rules: a platform admin acts on any tenant; a tenant admin only on its own tenant, and an
attempt on another tenant's key or webhook secret looks exactly like a missing one.
"""

from sqlalchemy import Select, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from orchestrator.db.models import ApiKey, Tenant, utcnow
from orchestrator.environments import DEFAULT_ENVIRONMENT, Environment
from orchestrator.services.security import PLATFORM_SCOPE, SCOPES, digest, new_key
from orchestrator.services.webhooks import new_secret

PLATFORM_TENANT = "platform"
# Names a customer tenant cannot take: the platform tenant's, and the one it had before.
RESERVED_TENANT_NAMES = frozenset({"platform", "admin"})
BOOTSTRAP = "bootstrap"


class NotAllowed(Exception):
    """The caller may not do this; the message says why."""


class BootstrapKeyConflict(RuntimeError):
    """ORCHESTRATOR_ADMIN_KEY is a key some customer tenant already holds."""


def is_reserved(name: str) -> bool:
    return name.strip().casefold() in RESERVED_TENANT_NAMES


def create_tenant(*, session: Session, name: str, platform: bool = False) -> Tenant:
    tenant = Tenant(name=name, webhook_secret=new_secret(), is_platform=platform)
    session.add(tenant)
    session.commit()
    return tenant


def visible_tenant(*, session: Session, tenant_id: int, acting_tenant: int | None) -> Tenant | None:
    """The tenant, if it exists and the actor may see it (`acting_tenant` None: any)."""
    if acting_tenant is not None and tenant_id != acting_tenant:
        return None
    return session.get(Tenant, tenant_id)


def create_key(
    *,
    session: Session,
    tenant_id: int,
    scopes: list[str],
    key: str | None = None,
    origin: str = "api",
    environment: Environment = DEFAULT_ENVIRONMENT,
) -> tuple[ApiKey, str] | None:
    """The new record and the plain key (shown once), or None for an unknown tenant.

    `platform` is refused (NotAllowed) for any tenant but the platform tenant.
    """
    tenant = session.get(Tenant, tenant_id)
    if tenant is None:
        return None
    if PLATFORM_SCOPE in scopes and not tenant.is_platform:
        raise NotAllowed("the 'platform' scope is only for keys of the platform tenant")
    key = key or new_key()
    record = ApiKey(
        tenant_id=tenant_id,
        digest=digest(key),
        scopes=" ".join(sorted(scopes)),
        origin=origin,
        environment=Environment(environment).value,
    )
    session.add(record)
    session.commit()
    return record, key


def rotate_webhook_secret(
    *, session: Session, tenant_id: int, acting_tenant: int | None = None
) -> Tenant | None:
    tenant = visible_tenant(session=session, tenant_id=tenant_id, acting_tenant=acting_tenant)
    if tenant is not None:
        tenant.webhook_secret = new_secret()
        session.commit()
    return tenant


def revoke_key(*, session: Session, key_id: int, acting_tenant: int | None = None) -> bool:
    """False for a key that does not exist, is revoked, or belongs to another tenant."""
    record = session.get(ApiKey, key_id)
    if record is None or record.revoked_at is not None:
        return False
    if acting_tenant is not None and record.tenant_id != acting_tenant:
        return False
    record.revoked_at = utcnow()
    session.commit()
    return True


def keys_query(*, tenant_id: int | None) -> Select:
    """Every key (`tenant_id` None) or one tenant's, for pagination."""
    query = select(ApiKey)
    return query if tenant_id is None else query.where(ApiKey.tenant_id == tenant_id)


def platform_tenant(session: Session) -> Tenant | None:
    return session.scalar(select(Tenant).where(Tenant.is_platform).order_by(Tenant.id).limit(1))


def ensure_bootstrap_key(*, session: Session, key: str) -> list[int]:
    """Make `key` the working platform key and revoke the earlier bootstrap keys.

    Returns the ids of the keys it revoked. Idempotent across restarts and safe when several
    replicas start at once with the same key (the digest is unique; the loser re-reads).
    """
    for attempt in range(2):
        try:
            return _ensure_bootstrap_key(session, key)
        except IntegrityError:
            session.rollback()
            if attempt:
                raise
    return []


def _ensure_bootstrap_key(session: Session, key: str) -> list[int]:
    tenant = platform_tenant(session) or create_tenant(
        session=session, name=PLATFORM_TENANT, platform=True
    )
    record = session.scalar(select(ApiKey).where(ApiKey.digest == digest(key)))
    if record is None:
        record, _ = create_key(
            session=session, tenant_id=tenant.id, scopes=list(SCOPES), key=key, origin=BOOTSTRAP
        )
    elif record.tenant_id != tenant.id:
        raise BootstrapKeyConflict(
            f"ORCHESTRATOR_ADMIN_KEY is key {record.id} of tenant {record.tenant_id}: pick another"
        )
    else:  # a key of an earlier version or made by hand: now the bootstrap key, with every scope
        record.origin, record.scopes = BOOTSTRAP, " ".join(sorted(SCOPES))
    earlier = list(
        session.scalars(
            select(ApiKey.id).where(
                ApiKey.origin == BOOTSTRAP, ApiKey.revoked_at.is_(None), ApiKey.id != record.id
            )
        )
    )
    if earlier:
        session.execute(update(ApiKey).where(ApiKey.id.in_(earlier)).values(revoked_at=utcnow()))
    session.commit()
    return earlier
