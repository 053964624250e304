"""The audit trail: one entry per admin action, written in the caller's transaction."""

from sqlalchemy.orm import Session

from orchestrator.api.keycache import Caller
from orchestrator.db.models import AuditEntry


def record(
    session: Session,
    caller: Caller,
    action: str,
    target: str,
    asked: dict,
    result: str = "ok",
    detail: str | None = None,
) -> None:
    """Add who did `action` on `target`, what they asked and how it ended; the caller commits."""
    session.add(
        AuditEntry(
            key_id=caller.id,
            tenant_id=caller.tenant_id,
            action=action,
            target=target,
            request=asked,
            result=result,
            detail=detail,
        )
    )
