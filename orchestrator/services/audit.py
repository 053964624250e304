"""The audit trail: one entry per admin action, written in the caller's transaction."""

from sqlalchemy.orm import Session

from orchestrator.api.keycache import Caller
from orchestrator.db.models import AuditEntry


def record(
    session: Session,
    caller: Caller | None,
    action: str,
    target: str,
    asked: dict,
    result: str = "ok",
    detail: str | None = None,
) -> None:
    """Add who did `action` on `target` (`caller` None: the orchestrator itself, e.g. a
    canary's automatic abort), what they asked and how it ended; the caller commits."""
    session.add(
        AuditEntry(
            key_id=caller.id if caller else None,
            tenant_id=caller.tenant_id if caller else None,
            action=action,
            target=target,
            request=asked,
            result=result,
            detail=detail,
        )
    )
