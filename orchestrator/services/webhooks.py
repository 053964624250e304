"""Signed CRM webhooks: HMAC-SHA256 of the raw body under the tenant's secret.

The payload carries a `timestamp`; one outside the tolerance window is refused. A signature is
remembered in the same transaction that stores its ticket: a delivery that fails (a database
error, say) leaves no trace and can be sent again, and a repeat of one that succeeded returns
the ticket it made instead of a second one. Remembered signatures older than twice the window
are pruned: their timestamps can no longer pass the freshness check (a timestamp may lie up to
one window in the future, so a signature stays replayable for at most two windows).
"""

import hashlib
import hmac
import json
import logging
import secrets
import time
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from orchestrator.db.models import Tenant, Ticket, WebhookDelivery, utcnow
from orchestrator.schemas.tickets import TicketCreate
from orchestrator.services import tickets

SIGNATURE_PREFIX = "sha256="
log = logging.getLogger(__name__)


class BadSignature(ValueError):
    pass


class TooDeep(ValueError):
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
    given = header.strip()
    # Bytes, not str: compare_digest raises TypeError on a non-ASCII str.
    expected = sign(tenant.webhook_secret, body).encode()
    if not hmac.compare_digest(expected, given.encode("utf-8", errors="replace")):
        raise BadSignature("the signature does not match the body")
    return given.removeprefix(SIGNATURE_PREFIX)


def check_fresh(timestamp: int, tolerance_s: int, now: float | None = None) -> None:
    if abs((now or time.time()) - timestamp) > tolerance_s:
        raise BadSignature(f"timestamp outside the {tolerance_s} s window; sign a fresh one")


def load_json(raw: bytes, max_depth: int) -> Any:
    """json.loads, with nesting over `max_depth` refused (TooDeep) instead of a RecursionError."""
    try:
        value = json.loads(raw)
    except RecursionError:
        raise TooDeep(f"JSON nested deeper than {max_depth} levels") from None
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:  # without recursion: the value may be nested almost to the interpreter's limit
        node, depth = stack.pop()
        if not isinstance(node, dict | list):
            continue
        if depth > max_depth:
            raise TooDeep(f"JSON nested deeper than {max_depth} levels")
        children = node.values() if isinstance(node, dict) else node
        stack.extend((child, depth + 1) for child in children)
    return value


def accept(session: Session, tenant_id: int, signature: str, data: TicketCreate) -> tickets.Stored:
    """The delivery's ticket, stored with its signature in one transaction.

    A repeat returns the earlier ticket with `created=False`: the same signature again (a
    replay), or a new signature for an event already stored (same external id). A database
    error leaves nothing behind, so the same delivery can be sent again.
    """
    seen = session.scalar(
        select(WebhookDelivery.id).where(
            WebhookDelivery.tenant_id == tenant_id, WebhookDelivery.signature == signature
        )
    )
    if seen is not None:
        earlier = session.scalar(
            select(Ticket).where(
                Ticket.tenant_id == tenant_id, Ticket.external_id == data.external_id
            )
        )
        if earlier is None:  # remembered without its ticket: never stored in one transaction
            raise BadSignature("this signature was already used (replay)")
        return tickets.Stored(earlier, created=False)
    session.add(WebhookDelivery(tenant_id=tenant_id, signature=signature))
    stored = tickets.create_ticket(session, tenant_id, data)  # commits the delivery with it
    if not stored.created and session.new:
        session.commit()  # a fresh signature for an event already stored: remember it too
    return stored


def prune(session: Session, tolerance_s: int) -> int:
    """Forget signatures that can no longer be replayed; best effort, in its own transaction."""
    cutoff = utcnow() - timedelta(seconds=2 * tolerance_s)
    try:
        result = session.execute(
            delete(WebhookDelivery).where(WebhookDelivery.received_at < cutoff)
        )
        session.commit()
    except SQLAlchemyError:  # pruning again on the next delivery is soon enough
        session.rollback()
        log.warning("could not prune remembered webhook signatures", exc_info=True)
        return 0
    return result.rowcount
