"""The job queue in the database: claim with a lease, finish, retry with backoff, or fail.

Claiming selects with `FOR UPDATE SKIP LOCKED` (PostgreSQL; SQLite serialises writers and
ignores it) and then marks the rows with this worker's lease token only where they are still
pending, so two workers never run one job. A worker renews its leases while it runs; the
jobs of a worker that died return to the queue when its lease runs out.
"""

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from orchestrator.db.models import Job, Ticket, utcnow

UNFINISHED = ("pending", "running")


@dataclass(frozen=True)
class Backoff:
    base_s: float
    max_s: float
    max_attempts: int

    def delay_s(self, attempts: int) -> float:
        return min(self.base_s * 2 ** max(attempts - 1, 0), self.max_s)


def claim(session: Session, token: str, limit: int, lease_s: float) -> list[Job]:
    now = utcnow()
    candidates = select(Job.id).where(Job.status == "pending", Job.run_after <= now)
    candidates = candidates.order_by(Job.id).limit(limit).with_for_update(skip_locked=True)
    ids = list(session.scalars(candidates))
    if not ids:
        session.rollback()
        return []
    session.execute(
        update(Job)
        .where(Job.id.in_(ids), Job.status == "pending")
        .values(
            status="running",
            lease_token=token,
            leased_until=now + timedelta(seconds=lease_s),
            attempts=Job.attempts + 1,
        )
    )
    session.commit()
    return list(session.scalars(select(Job).where(Job.id.in_(ids), Job.lease_token == token)))


def renew(session: Session, token: str, lease_s: float) -> None:
    session.execute(
        update(Job)
        .where(Job.lease_token == token, Job.status == "running")
        .values(leased_until=utcnow() + timedelta(seconds=lease_s))
    )
    session.commit()


def release_expired(session: Session) -> int:
    """Put back the jobs whose worker stopped renewing (it crashed or was killed)."""
    result = session.execute(
        update(Job)
        .where(Job.status == "running", Job.leased_until < utcnow())
        .values(status="pending", lease_token=None, leased_until=None)
    )
    session.commit()
    return result.rowcount


def finish(session: Session, job: Job) -> None:
    job.status, job.lease_token, job.leased_until = "done", None, None
    session.commit()


def retry_or_fail(session: Session, job: Job, ticket: Ticket, error: str, backoff: Backoff) -> str:
    """Schedule another attempt, or record the failure on the ticket after the last one."""
    job.last_error, job.lease_token, job.leased_until = error, None, None
    if job.attempts >= backoff.max_attempts:
        job.status = "failed"
        ticket.status = "failed"
        ticket.error = f"gave up after {job.attempts} attempts: {error}"
        ticket.processed_at = utcnow()
        outcome = "failed"
    else:
        job.status = "pending"
        job.run_after = utcnow() + timedelta(seconds=backoff.delay_s(job.attempts))
        if ticket.status == "processing":  # waiting again; an agent's status is left alone
            ticket.status = "queued"
        outcome = "retry"
    session.commit()
    return outcome


def queue_stats(session: Session) -> tuple[int, float]:
    """How many jobs are unfinished, and the age in seconds of the oldest."""
    depth, oldest = session.execute(
        select(func.count(Job.id), func.min(Job.created_at)).where(Job.status.in_(UNFINISHED))
    ).one()
    if oldest is None:
        return depth, 0.0
    return depth, (utcnow() - oldest).total_seconds()
