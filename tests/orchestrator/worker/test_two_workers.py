"""Two worker processes on one PostgreSQL database under load: one freezes, then is killed.

Worker A is frozen (SIGSTOP) while it holds a batch: its leases lapse and worker B runs the
batch. When A thaws, every write it attempts on those jobs is refused and counted, and B's
results stay as they were. Then A is killed (SIGKILL) mid-batch: B runs what A held once the
leases lapse. In the end every accepted ticket is done, and B wrote one result per job it is
named on. The lease is short here because lease expiry is what is tested.
"""

import os
import signal
import subprocess
import sys
import time

import httpx
import pytest
from sqlalchemy import create_engine, func, select, text

from orchestrator.db.models import Job, Ticket
from tests.utils.load import Load
from tests.utils.orchestrator import (
    POSTGRES_URL,
    TEST_ENV,
    Orchestrator,
    new_key,
    postgres_reachable,
    reset_postgres,
    wait_until,
)
from tests.utils.ports import free_ports

# A short lease, because lease expiry is tested; a short draft timeout (then the fallback
# draft), because what is tested is who writes a result, not how fast the LLM is here.
WORKER_ENV = {
    "ORCHESTRATOR_JOB_LEASE_S": "3",
    "ORCHESTRATOR_WORKER_BATCH": "4",
    "ORCHESTRATOR_DRAFT_TIMEOUT_S": "10",
}


class WorkerProcess:
    """`python -m orchestrator worker` with its own metrics port."""

    def __init__(self, database_url: str, triton_settings):
        (self.metrics_port,) = free_ports(1)
        env = dict(
            os.environ,
            DATABASE_URL=database_url,
            TRITON_GRPC_PORT=str(triton_settings.grpc_port),
            TRITON_HTTP_PORT=str(triton_settings.http_port),
            **TEST_ENV,
            **WORKER_ENV,
        )
        command = [sys.executable, "-m", "orchestrator", "worker"]
        self.process = subprocess.Popen(
            [*command, "--metrics-port", str(self.metrics_port)],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        line = self.process.stdout.readline()  # "worker <token[:8]> running against ..."
        assert line.startswith("worker "), f"the worker did not start: {line!r}"
        self.prefix = line.split()[1]

    def outcomes(self) -> dict[str, float]:
        body = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10).text
        found = {}
        for line in body.splitlines():
            if line.startswith("support_jobs_processed_total{"):
                labels, value = line.rsplit(" ", 1)
                found[labels.split('outcome="')[1].split('"')[0]] = float(value)
        return found

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.kill()
        self.process.wait(30)


def _held_by(engine, worker: WorkerProcess) -> list[int]:
    with engine.connect() as connection:
        return list(
            connection.scalars(
                select(Job.id).where(
                    Job.status == "running", Job.lease_token.startswith(worker.prefix)
                )
            )
        )


def _frozen_in_transaction(engine) -> bool:
    """Whether a connection has sat inside a transaction for a while (the frozen worker's)."""
    query = text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND state LIKE 'idle in transaction%' AND now() - state_change > interval '0.3 s'"
    )
    with engine.connect() as connection:
        return connection.scalar(query) > 0


def _freeze_holding_jobs(engine, worker: WorkerProcess) -> list[int]:
    """SIGSTOP the worker while it holds jobs and is not inside a transaction."""
    for _ in range(10):
        wait_until(lambda: _held_by(engine, worker), 120, interval_s=0.05, what="a held batch")
        worker.process.send_signal(signal.SIGSTOP)
        time.sleep(0.5)
        held = _held_by(engine, worker)
        if held and not _frozen_in_transaction(engine):
            return held
        worker.process.send_signal(signal.SIGCONT)  # frozen with row locks held: try again
    raise AssertionError("could not freeze the worker between transactions")


def _results(engine, job_ids: list[int]) -> dict[int, tuple]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(
                Job.id,
                Job.status,
                Job.lease_token,
                Job.attempts,
                Ticket.draft_text,
                Ticket.processed_at,
            )
            .join(Ticket, Ticket.id == Job.ticket_id)
            .where(Job.id.in_(job_ids))
        )
        return {row[0]: tuple(row[1:]) for row in rows}


def _all_done_by(engine, job_ids: list[int], prefix: str) -> bool:
    results = _results(engine, job_ids)
    return all(r[0] == "done" and (r[1] or "").startswith(prefix) for r in results.values())


def _all_run_again(engine, job_ids: list[int]) -> bool:
    """Done, on a second attempt: another worker ran them after the first lease lapsed."""
    return all(r[0] == "done" and r[2] >= 2 for r in _results(engine, job_ids).values())


@pytest.fixture
def postgres(triton):
    if not postgres_reachable():
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")
    reset_postgres()
    engine = create_engine(POSTGRES_URL)
    yield engine
    engine.dispose()


def test_a_frozen_then_killed_worker_loses_no_ticket_and_overwrites_none(postgres, triton_settings):
    unlimited = {
        "ORCHESTRATOR_WORKER_IN_PROCESS": "false",
        "ORCHESTRATOR_RATE_LIMIT_PER_MINUTE": "1000000",
        "ORCHESTRATOR_RATE_LIMIT_BURST": "100000",
    }
    orchestrator = Orchestrator(POSTGRES_URL, triton_settings, **unlimited).start()
    a = b = None
    try:
        a = WorkerProcess(POSTGRES_URL, triton_settings)
        b = WorkerProcess(POSTGRES_URL, triton_settings)
        scopes = ["tickets:write", "tickets:read"]
        headers = {"X-API-Key": new_key(orchestrator.client, scopes, "two workers")}
        base_url = str(orchestrator.client.base_url)
        with Load(base_url, headers, threads=1, pause_s=1.0, limit=80) as load:
            frozen = _freeze_holding_jobs(postgres, a)
            wait_until(lambda: _all_run_again(postgres, frozen), 120, what="B to run A's batch")
            taken_over = _results(postgres, frozen)
            a.process.send_signal(signal.SIGCONT)
            wait_until(
                lambda: (
                    a.outcomes().get("lease_lost", 0) >= 1
                    or _results(postgres, frozen) != taken_over
                ),
                60,
                what="A to try to write its stale results",
            )
            assert _results(postgres, frozen) == taken_over, "a stale worker overwrote a result"
            assert _all_done_by(postgres, frozen, b.prefix)

            killed = wait_until(lambda: _held_by(postgres, a), 120, interval_s=0.05, what="A")
            a.process.kill()
            a.process.wait(30)
            # Keep submitting after the kill: on an idle machine the steps above take only
            # seconds, and the check below wants a real load behind it.
            wait_until(lambda: len(load.accepted) >= 10, 60, what="ten accepted tickets")
        accepted = list(load.accepted)
        assert len(accepted) >= 10

        def all_done() -> bool:
            with postgres.connect() as connection:
                statuses = connection.execute(
                    select(Ticket.status, Job.status)
                    .join(Job, Job.ticket_id == Ticket.id)
                    .where(Ticket.id.in_(accepted))
                ).all()
            assert len(statuses) == len(accepted), "accepted tickets are missing"
            assert ("failed", "failed") not in statuses
            return all(s == ("done", "done") for s in statuses)

        wait_until(all_done, 600, interval_s=1, what=f"all {len(accepted)} tickets")
        assert _all_done_by(postgres, killed, b.prefix)
        with postgres.connect() as connection:
            finished_by_b = connection.scalar(
                select(func.count(Job.id)).where(Job.lease_token.startswith(b.prefix))
            )
            drafted = connection.scalar(
                select(func.count(Ticket.id)).where(Ticket.draft_text.is_not(None))
            )
        assert b.outcomes().get("done") == finished_by_b, "B wrote some result twice"
        assert drafted == len(accepted)
    finally:
        for worker in (a, b):
            if worker is not None:
                worker.close()
        orchestrator.close()
