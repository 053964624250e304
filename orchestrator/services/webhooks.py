"""Signed CRM webhooks: HMAC-SHA256 of the raw body under the tenant's secret.

The payload carries a `timestamp`; one older than the tolerance is refused, and a signature
already accepted is refused as a replay, so a captured request cannot be sent again.
"""

import hashlib
import hmac
import secrets
import time

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from orchestrator.db.models import Tenant, WebhookDelivery

SIGNATURE_PREFIX = "sha256="


class BadSignature(ValueError):
    pass


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def sign(secret: str, body: bytes) -> str:
    """The X-Signature header value for `body` (what a CRM computes)."""
    return SIGNATURE_PREFIX + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(tenant: Tenant | None, header: str | None, body: bytes) -> str:
    """The signature's hex digest when it is the tenant's; BadSignature otherwise."""
    if tenant is None or not tenant.webhook_secret:
        raise BadSignature("unknown tenant or no webhook secret set")
    if not header or not header.startswith(SIGNATURE_PREFIX):
        raise BadSignature("missing X-Signature: sha256=<hex>")
    if not hmac.compare_digest(sign(tenant.webhook_secret, body), header.strip()):
        raise BadSignature("the signature does not match the body")
    return header.strip().removeprefix(SIGNATURE_PREFIX)


def check_fresh(timestamp: int, tolerance_s: int, now: float | None = None) -> None:
    if abs((now or time.time()) - timestamp) > tolerance_s:
        raise BadSignature(f"timestamp outside the {tolerance_s} s window; sign a fresh one")


def remember(session: Session, tenant_id: int, signature: str) -> None:
    """Record the signature as used; BadSignature when it was used before."""
    session.add(WebhookDelivery(tenant_id=tenant_id, signature=signature))
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise BadSignature("this signature was already used (replay)") from None
