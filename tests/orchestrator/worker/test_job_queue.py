"""The job queue on a real SQLite file and a real PostgreSQL: claim, fairness, leases, states."""

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import event, select, update

from contracts import PROJECT_ROOT
from contracts.models import TRIAGE_MAX_BATCH, TRIAGE_MODELS
from orchestrator.db.models import Job, db_now
from orchestrator.db.session import session_factory
from orchestrator.settings import OrchestratorSettings
from orchestrator.worker import queue as jobs
from tests.utils.jobs import database_engine, enqueue


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path):
    engine = database_engine(request.param, tmp_path)
    yield engine
    engine.dispose()


def _claim(engine, token: str, limit: int = 16, lease_s: float = 30) -> list[jobs.ClaimedJob]:
    with session_factory(engine).begin() as session:
        return jobs.claim(session, token=token, limit=limit, lease_s=lease_s)


def _job(engine, job_id: int) -> Job:
    with session_factory(engine)() as session:
        return session.get(Job, job_id)


def test_a_claim_is_one_update_statement(engine):
    enqueue(engine, "acme", 3)
    statements = []

    def record(_conn, _cursor, statement, *_):
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        claimed = _claim(engine, "a" * 32)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert len(claimed) == 3 and all(c.attempts == 1 for c in claimed)
    assert len(statements) == 1, statements
    assert statements[0].lstrip().upper().startswith("UPDATE") and "RETURNING" in statements[0]


def test_one_tenants_flood_does_not_starve_another(engine):
    enqueue(engine, "flood", 50)
    quiet = enqueue(engine, "quiet", 2)
    claimed = _claim(engine, "a" * 32, limit=16)
    assert len(claimed) == 16
    assert set(quiet) <= {c.ticket_id for c in claimed}


def test_jobs_carry_their_tenant_from_intake(engine):
    enqueue(engine, "acme", 1)
    with session_factory(engine)() as session:
        job = session.scalars(select(Job)).one()
        assert job.tenant_id is not None and job.status == jobs.JobStatus.PENDING


def test_concurrent_claims_never_share_a_job(engine):
    enqueue(engine, "acme", 60)
    taken: dict[str, list[int]] = {}

    def worker(token: str) -> None:
        mine = taken.setdefault(token, [])
        while claimed := _claim(engine, token, limit=5):
            mine.extend(c.id for c in claimed)

    threads = [threading.Thread(target=worker, args=(f"{n:032d}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [job_id for ids in taken.values() for job_id in ids]
    assert len(every) == len(set(every)) == 60


def test_a_stale_worker_cannot_overwrite_the_new_holders_result(engine):
    enqueue(engine, "acme", 1)
    stale, fresh = "s" * 32, "f" * 32
    (job,) = _claim(engine, stale, lease_s=-1)  # its lease lapsed at once
    with session_factory(engine).begin() as session:
        assert jobs.release_expired(session) == 1
    assert _claim(engine, fresh)[0].id == job.id
    for write in (
        lambda s: jobs.finish(s, job_id=job.id, token=stale),
        lambda s: jobs.retry(s, job_id=job.id, token=stale, error="x", delay_s=1),
        lambda s: jobs.wait(s, job_id=job.id, token=stale, error="x", delay_s=1),
        lambda s: jobs.fail(s, job_id=job.id, token=stale, error="x"),
        lambda s: jobs.release(s, job_id=job.id, token=stale),
    ):
        with pytest.raises(jobs.LeaseLost), session_factory(engine).begin() as session:
            write(session)
    with session_factory(engine)() as session:
        assert jobs.renew(session, token=stale, job_ids=[job.id], lease_s=30) == set()
    with session_factory(engine).begin() as session:
        jobs.finish(session, job_id=job.id, token=fresh)
    row = _job(engine, job.id)
    assert (row.status, row.lease_token, row.attempts) == ("done", fresh, 2)


def test_finishing_a_job_that_is_not_running_is_an_error(engine):
    enqueue(engine, "acme", 1)
    token = "a" * 32
    with session_factory(engine)() as session:
        job_id = session.scalar(select(Job.id))
    with pytest.raises(jobs.LeaseLost), session_factory(engine).begin() as session:
        jobs.finish(session, job_id=job_id, token=token)  # pending
    _claim(engine, token)
    with session_factory(engine).begin() as session:
        jobs.finish(session, job_id=job_id, token=token)
    with pytest.raises(jobs.LeaseLost), session_factory(engine).begin() as session:
        jobs.finish(session, job_id=job_id, token=token)  # done is final
    with pytest.raises(jobs.LeaseLost), session_factory(engine).begin() as session:
        jobs.retry(session, job_id=job_id, token=token, error="x", delay_s=0)
    assert _job(engine, job_id).status == jobs.JobStatus.DONE


def test_leases_follow_the_database_clock_not_the_workers(engine, monkeypatch):
    """A worker whose clock is an hour slow must not hand out leases that have lapsed."""
    enqueue(engine, "acme", 1)
    slow = datetime.now(UTC) - timedelta(hours=1)
    monkeypatch.setattr(jobs, "utcnow", lambda: slow, raising=False)
    (job,) = _claim(engine, "a" * 32, lease_s=30)
    monkeypatch.undo()
    with session_factory(engine).begin() as session:
        assert jobs.release_expired(session) == 0
        now = session.scalar(select(db_now()))
    left = (_job(engine, job.id).leased_until - now).total_seconds()
    assert 25 < left <= 30.5


def test_a_due_time_follows_the_database_clock(engine, monkeypatch):
    """A worker whose clock is an hour fast must not take jobs that are not due."""
    enqueue(engine, "acme", 2)
    fast = datetime.now(UTC) + timedelta(hours=1)
    monkeypatch.setattr(jobs, "utcnow", lambda: fast, raising=False)
    with session_factory(engine).begin() as session:
        first, second = session.scalars(select(Job.id).order_by(Job.id))
        session.execute(update(Job).where(Job.id == first).values(run_after=db_now(60)))
        session.execute(update(Job).where(Job.id == second).values(run_after=db_now(-0.5)))
    assert [c.id for c in _claim(engine, "a" * 32)] == [second]


def test_a_dependency_outage_does_not_spend_an_attempt(engine):
    enqueue(engine, "acme", 1)
    token = "a" * 32
    (job,) = _claim(engine, token)
    with session_factory(engine).begin() as session:
        jobs.wait(session, job_id=job.id, token=token, error="Triton down", delay_s=60)
    row = _job(engine, job.id)
    assert (row.status, row.attempts, row.lease_token) == ("pending", 0, None)
    assert _claim(engine, token) == []  # not due for a minute
    with session_factory(engine)() as session:
        depth, age = jobs.queue_stats(session)
    assert depth == 1 and 0 <= age < 60


def test_retry_backs_off_and_counts_the_attempt(engine):
    enqueue(engine, "acme", 1)
    token = "a" * 32
    (job,) = _claim(engine, token)
    with session_factory(engine).begin() as session:
        jobs.retry(session, job_id=job.id, token=token, error="bad", delay_s=0)
    row = _job(engine, job.id)
    assert (row.status, row.attempts, row.last_error) == ("pending", 1, "bad")
    assert _claim(engine, token)[0].attempts == 2


def _max_batch_size(model: str) -> int:
    config = Path(PROJECT_ROOT, "model_repository", model, "config.pbtxt").read_text()
    (line,) = [x for x in config.splitlines() if x.startswith("max_batch_size:")]
    return int(line.split(":")[1])


def test_a_worker_batch_fits_one_triage_call():
    assert all(_max_batch_size(m) >= TRIAGE_MAX_BATCH for m in TRIAGE_MODELS)
    assert OrchestratorSettings(worker_batch=TRIAGE_MAX_BATCH).worker_batch == TRIAGE_MAX_BATCH
    with pytest.raises(ValidationError, match="worker_batch"):
        OrchestratorSettings(worker_batch=TRIAGE_MAX_BATCH + 1)


def test_backoff_doubles_up_to_its_cap_and_survives_a_long_outage():
    backoff = jobs.Backoff(base_s=0.5, max_s=30, max_attempts=5)
    assert [backoff.delay_s(n) for n in (0, 1, 2, 3, 7, 8)] == [0.5, 0.5, 1, 2, 30, 30]
    # an LLM down for hours: the worker counts thousands of outages in a row (seen: the
    # float overflow at 2**1024 left jobs unrecorded, retried for ever)
    assert backoff.delay_s(5000) == 30
