"""The job queue in the database: claim with a lease, then finish, retry, wait or fail.

A job's states (JobStatus) and the only transitions between them:

    pending --claim--------------------------------------------> running
    running --finish-------------------------------------------> done     (final)
    running --retry: its own failure, attempts left, backoff---> pending
    running --wait: a dependency is down, attempt not counted--> pending
    running --release: its worker stops cleanly, not counted---> pending
    running --fail: its own failures used every attempt--------> failed   (final)
    running --lease lapsed: its worker stopped renewing--------> pending

Every write on a running job names the lease token of the worker that claimed it and is
refused (LeaseLost) when that worker no longer holds it, so a worker whose lease lapsed
never overwrites the result of the worker that took the job over. Times come from the
database's clock (`db_now`), so that workers whose clocks drift agree on leases and due
times. Functions here do not commit: the caller writes the ticket in the same transaction.
"""

from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from orchestrator.db.models import Job, db_now

NO_SYNC = {"synchronize_session": False}  # nothing in the session mirrors these rows


class JobStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


UNFINISHED = (JobStatus.PENDING, JobStatus.RUNNING)


class LeaseLost(RuntimeError):
    """The job is not running under this worker's lease (it lapsed, or the job is final)."""

    def __init__(self, job_id: int, transition: str):
        super().__init__(f"job {job_id} is not running under this worker's lease ({transition})")
        self.job_id = job_id


@dataclass(frozen=True)
class Backoff:
    base_s: float
    max_s: float
    max_attempts: int

    def delay_s(self, attempts: int) -> float:
        # The doubling stops at 2**60 (far past any max_s): a dependency down for hours counts
        # thousands of outages, and 2.0**1024 overflows a float.
        return min(self.base_s * 2.0 ** min(max(attempts - 1, 0), 60), self.max_s)


@dataclass(frozen=True)
class ClaimedJob:
    id: int
    ticket_id: int
    attempts: int  # including the one just started


def claim(session: Session, *, token: str, limit: int, lease_s: float) -> list[ClaimedJob]:
    """Mark up to `limit` due jobs running under `token`, in one statement.

    Fair across tenants: candidates are ranked within their tenant by age and taken rank by
    rank, so each tenant's oldest job comes before any tenant's second. On PostgreSQL the
    candidates are locked `FOR UPDATE SKIP LOCKED`, so concurrent claims take disjoint jobs
    without waiting; SQLite serialises writers and needs no lock clause.
    """
    if limit <= 0:
        return []
    due = (Job.status == JobStatus.PENDING, Job.run_after <= db_now())
    ranked = (
        select(
            Job.id,
            func.row_number().over(partition_by=Job.tenant_id, order_by=Job.id).label("rank"),
        )
        .where(*due)
        .subquery()
    )
    candidates = (
        select(Job.id)
        .join(ranked, ranked.c.id == Job.id)
        .where(*due)  # rechecked on the newest row version once the lock is taken
        .order_by(ranked.c.rank, Job.id)
        .limit(limit)
        .with_for_update(skip_locked=True, of=Job)
    )
    rows = session.execute(
        update(Job)
        .where(Job.id.in_(candidates), Job.status == JobStatus.PENDING)
        .values(
            status=JobStatus.RUNNING,
            lease_token=token,
            leased_until=db_now(lease_s),
            attempts=Job.attempts + 1,
        )
        .returning(Job.id, Job.ticket_id, Job.attempts),
        execution_options=NO_SYNC,
    )
    return sorted((ClaimedJob(*row) for row in rows), key=lambda job: job.id)


def renew(session: Session, *, token: str, job_ids: list[int], lease_s: float) -> set[int]:
    """Extend this worker's leases on `job_ids`; the ids it still holds come back."""
    if not job_ids:
        return set()
    rows = session.execute(
        update(Job)
        .where(_held(token, job_ids))
        .values(leased_until=db_now(lease_s))
        .returning(Job.id),
        execution_options=NO_SYNC,
    )
    return set(rows.scalars())


def release_expired(session: Session) -> int:
    """Put back the jobs whose worker stopped renewing (it crashed, hung or was killed).

    A row another transaction is writing is skipped, not waited for: a worker frozen in the
    middle of a transaction must not stall every other worker's housekeeping.
    """
    lapsed = (
        select(Job.id)
        .where(Job.status == JobStatus.RUNNING, Job.leased_until < db_now())
        .with_for_update(skip_locked=True)
    )
    result = session.execute(
        update(Job)
        .where(Job.id.in_(lapsed), Job.status == JobStatus.RUNNING, Job.leased_until < db_now())
        .values(status=JobStatus.PENDING, lease_token=None, leased_until=None),
        execution_options=NO_SYNC,
    )
    return result.rowcount


def finish(session: Session, *, job_id: int, token: str) -> None:
    """running → done. The token stays on the row: it names the worker that wrote the result."""
    _settle(session, job_id, token, "finish", status=JobStatus.DONE, leased_until=None)


def retry(session: Session, *, job_id: int, token: str, error: str, delay_s: float) -> None:
    """running → pending after `delay_s`: the job failed and has attempts left."""
    _settle(session, job_id, token, "retry", **_back(error, delay_s))


def wait(session: Session, *, job_id: int, token: str, error: str, delay_s: float) -> None:
    """running → pending after `delay_s`, the attempt not counted: a dependency is down."""
    _settle(session, job_id, token, "wait", attempts=Job.attempts - 1, **_back(error, delay_s))


def release(session: Session, *, job_id: int, token: str) -> None:
    """running → pending now, the attempt not counted: this worker is stopping."""
    values = _back(None, 0.0)
    del values["last_error"]
    _settle(session, job_id, token, "release", attempts=Job.attempts - 1, **values)


def fail(session: Session, *, job_id: int, token: str, error: str) -> None:
    """running → failed: the job's own failures used up its attempts."""
    _settle(
        session, job_id, token, "fail", status=JobStatus.FAILED, leased_until=None, last_error=error
    )


def queue_stats(session: Session) -> tuple[int, float]:
    """How many jobs are unfinished, and the age in seconds of the oldest."""
    depth, oldest, now = session.execute(
        select(func.count(Job.id), func.min(Job.created_at), db_now()).where(
            Job.status.in_(UNFINISHED)
        )
    ).one()
    if oldest is None:
        return depth, 0.0
    return depth, max((now - oldest).total_seconds(), 0.0)


def _held(token: str, job_ids: list[int]):
    return Job.id.in_(job_ids) & (Job.lease_token == token) & (Job.status == JobStatus.RUNNING)


_NO_LEASE = dict.fromkeys(("lease_token", "leased_until"))  # a job back in the queue


def _back(error: str | None, delay_s: float) -> dict:
    return {
        "status": JobStatus.PENDING,
        **_NO_LEASE,
        "last_error": error,
        "run_after": db_now(delay_s),
    }


def _settle(session: Session, job_id: int, token: str, transition: str, **values) -> None:
    """One conditional UPDATE; on PostgreSQL it also locks the row until the caller commits."""
    result = session.execute(
        update(Job).where(_held(token, [job_id])).values(**values), execution_options=NO_SYNC
    )
    if result.rowcount != 1:
        raise LeaseLost(job_id, transition)
