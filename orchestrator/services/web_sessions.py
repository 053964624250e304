"""The agent workspace's sign-ins: an API key exchanged for a random session token (the
cookie) with its own CSRF token. Only the token's digest is stored; a revoked key or an
expired row signs the browser out."""

import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from orchestrator.api.keycache import Caller, caller_of
from orchestrator.db.models import ApiKey, Tenant, WebSession, utcnow
from orchestrator.services.security import digest


@dataclass(frozen=True)
class SignedIn:
    caller: Caller
    csrf_token: str


def open_session(session: Session, caller: Caller, hours: float) -> tuple[str, str]:
    """(session token, CSRF token) for a key that was just checked."""
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    now = utcnow()
    # expired sign-ins of the same key go with each new one: the table stays small
    session.execute(
        delete(WebSession).where(WebSession.key_id == caller.id, WebSession.expires_at < now)
    )
    session.add(
        WebSession(
            digest=digest(token),
            key_id=caller.id,
            csrf_token=csrf,
            expires_at=now + timedelta(hours=hours),
        )
    )
    session.commit()
    return token, csrf


def find_session(session: Session, token: str) -> SignedIn | None:
    """The signed-in key of a cookie's token; None when unknown, expired or its key revoked."""
    if not token:
        return None
    row = session.execute(
        select(WebSession, ApiKey, Tenant.is_platform)
        .join(ApiKey, ApiKey.id == WebSession.key_id)
        .join(Tenant, Tenant.id == ApiKey.tenant_id)
        .where(WebSession.digest == digest(token))
    ).first()
    if row is None:
        return None
    web, key, platform_tenant = row
    if key.revoked_at is not None or web.expires_at <= utcnow():
        return None
    return SignedIn(caller_of(key, platform_tenant), web.csrf_token)


def close_session(session: Session, token: str) -> None:
    session.execute(delete(WebSession).where(WebSession.digest == digest(token)))
    session.commit()
