"""The worker's periodic drift pass: it runs every interval, survives a failed pass, stops at
once, and skips its turn when another worker stored a pass recently (SQLite, no Triton)."""

import asyncio
from datetime import timedelta

import pytest

from orchestrator.db.session import make_engine, session_factory
from orchestrator.services.drift.monitor import DriftMonitor
from orchestrator.settings import DriftSettings
from orchestrator.worker.drift_job import DriftJob
from tests.utils.drift import past_run


class CountingMonitor(DriftMonitor):
    """A monitor whose pass only counts, and fails when told to."""

    def __init__(self, sessions, fail: bool = False):
        super().__init__(sessions, None, None, DriftSettings())
        self.passes, self.fail = 0, fail

    async def run_pass(self):
        self.passes += 1
        if self.fail:
            raise ConnectionError("Triton is down")


@pytest.fixture()
def sessions(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'jobs.db'}")
    yield session_factory(engine)
    engine.dispose()


def store_run(sessions, age: timedelta) -> None:
    with sessions() as session:
        session.add(past_run("x.html", age))
        session.commit()


async def run_for(job: DriftJob, seconds: float) -> None:
    task = asyncio.create_task(job.run())
    await asyncio.sleep(seconds)
    job.stop()
    await asyncio.wait_for(task, 1)  # stops at once, mid-wait


@pytest.mark.parametrize("fail", [False, True])
def test_a_pass_every_interval_even_after_a_failed_one(sessions, fail):
    monitor = CountingMonitor(sessions, fail=fail)
    asyncio.run(run_for(DriftJob(monitor, interval_s=0.05), 0.6))
    assert monitor.passes >= 3


def test_no_pass_before_the_first_interval(sessions):
    monitor = CountingMonitor(sessions)
    asyncio.run(run_for(DriftJob(monitor, interval_s=3600), 0.2))
    assert monitor.passes == 0


def test_a_recent_pass_of_another_worker_skips_this_ones_turn(sessions):
    job = DriftJob(CountingMonitor(sessions), interval_s=3600)
    assert job._due()  # no pass yet
    store_run(sessions, timedelta(hours=2))
    assert job._due()
    store_run(sessions, timedelta(minutes=10))
    assert not job._due()


def test_side_passes_run_with_each_pass_even_after_a_failure(sessions):
    ran = []

    async def credit():
        ran.append("credit")

    async def broken():
        raise ConnectionError("the database is down")

    job = DriftJob(CountingMonitor(sessions, fail=True), 0.05, side_passes=[broken, credit])
    asyncio.run(run_for(job, 0.6))
    assert len(ran) >= 3  # the main pass failed, and so did the first side pass, every time
