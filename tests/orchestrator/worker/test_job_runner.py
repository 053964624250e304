"""The worker's handling of a batch, on a real database, with a scripted LLM client.

These check the worker's own bookkeeping (which job gets which outcome, how many jobs it
holds, whose result is kept), so the LLM is a small stand-in that answers by the ticket's
text; the real LLM and Triton paths are covered by test_no_loss and test_two_workers.
"""

import asyncio

import pytest
from sqlalchemy import func, select, update

from orchestrator.api.keycache import Caller
from orchestrator.db.models import Job, ModelVersion, Ticket, db_now
from orchestrator.db.session import session_factory
from orchestrator.environments import Environment
from orchestrator.metrics import Metrics
from orchestrator.services import configs, keys
from orchestrator.services.drafts import OPENING_PREFIX, OPENING_STOP, load_notes
from orchestrator.settings import OrchestratorSettings
from orchestrator.triton.llm_client import Generation, LLMUnavailable
from orchestrator.worker import queue as jobs
from orchestrator.worker.runner import Worker
from tests.utils.jobs import database_engine, enqueue
from tests.utils.triage import RecordingTriage

INTENT = sorted(load_notes())[0]


class ScriptedLLM:
    """Answers `reply`; a ticket whose body names a fault gets that fault instead."""

    def __init__(self, reply: str = " your card", hold: asyncio.Event | None = None):
        self.reply, self.hold = reply, hold
        self.calls: list[dict] = []  # what each call sent

    async def stream(self, messages: list[dict], **params):
        self.calls.append({"messages": messages, **params})
        ticket = next(m["content"] for m in reversed(messages) if m["role"] == "user")
        if self.hold is not None:
            await self.hold.wait()
        if "boom" in ticket:
            await asyncio.sleep(0.3)  # the batch-mates finish first
            raise RuntimeError("a bug while drafting")
        if "outage" in ticket:
            raise LLMUnavailable("connection refused")
        yield self.reply
        yield Generation(self.reply, "stop", 10, 5)

    async def generate(self, messages: list[dict], **params) -> Generation:
        async for item in self.stream(messages, **params):
            if isinstance(item, Generation):
                return item


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path):
    engine = database_engine(request.param, tmp_path)
    yield engine
    engine.dispose()


def _worker(engine, llm, **settings) -> Worker:
    options = {"job_backoff_base_s": 0.5, "job_backoff_max_s": 2, **settings}
    return Worker(session_factory(engine), None, llm, Metrics(), OrchestratorSettings(**options))


def _rows(engine) -> dict[int, tuple]:
    with session_factory(engine)() as session:
        rows = session.execute(
            select(Ticket.id, Ticket.status, Ticket.draft_text, Job.status, Job.attempts)
            .join(Job, Job.ticket_id == Ticket.id)
            .order_by(Ticket.id)
        )
        # the LLM writes the sentence after the greeting; the note follows it
        return {
            i: (status, draft and draft.split("\n\n")[1].split(". ")[0], *job)
            for i, status, draft, *job in rows
        }


def _set_body(engine, ticket_id: int, body: str) -> None:
    with session_factory(engine).begin() as session:
        session.execute(update(Ticket).where(Ticket.id == ticket_id).values(body=body))


def _outcomes(worker: Worker) -> dict[str, float]:
    return {
        sample.labels["outcome"]: sample.value
        for metric in worker.metrics.jobs_processed.collect()
        for sample in metric.samples
        if sample.name.endswith("_total")
    }


def test_a_failed_draft_sends_back_only_its_own_job(engine):
    first, second, faulty = enqueue(engine, "acme", 3, intent=INTENT)
    _set_body(engine, faulty, "boom")
    worker = _worker(engine, ScriptedLLM())
    asyncio.run(worker._process(worker._claim(3)))
    rows = _rows(engine)
    assert rows[first] == ("done", f"{OPENING_PREFIX} your card", "done", 1)
    assert rows[second] == ("done", f"{OPENING_PREFIX} your card", "done", 1)
    assert rows[faulty][0] == "queued" and rows[faulty][2:] == ("pending", 1)


def test_a_dependency_outage_waits_without_spending_attempts(engine):
    (ticket,) = enqueue(engine, "acme", 1, intent=INTENT)
    _set_body(engine, ticket, "outage")
    worker = _worker(engine, ScriptedLLM(), job_max_attempts=2)
    for _ in range(3):  # more outages than attempts
        asyncio.run(worker._process(worker._claim(1)))
        assert _rows(engine)[ticket] == ("queued", None, "pending", 0)
        with session_factory(engine).begin() as session:  # due again now
            session.execute(update(Job).values(run_after=db_now(-1)))
    assert _outcomes(worker).get("wait") == 3


def test_a_worker_holds_at_most_worker_batch_jobs(engine):
    enqueue(engine, "acme", 20, intent=INTENT)

    async def scenario() -> int:
        hold = asyncio.Event()  # every draft hangs: nothing is ever settled
        worker = _worker(engine, ScriptedLLM(hold=hold), worker_batch=4, worker_poll_s=0.05)
        running = asyncio.create_task(worker.run())
        await asyncio.sleep(1.5)
        with session_factory(engine)() as session:
            held = session.scalar(
                select(func.count()).select_from(Job).where(Job.lease_token == worker.token)
            )
        await worker.stop(timeout_s=0.1)
        await running
        return held

    assert asyncio.run(scenario()) == 4
    # the stopped worker gave its jobs back at once, their attempts not counted
    assert {row[2:] for row in _rows(engine).values()} == {("pending", 0)}


def test_a_stale_workers_draft_does_not_replace_the_new_holders(engine):
    (ticket,) = enqueue(engine, "acme", 1, intent=INTENT)
    stale = _worker(engine, ScriptedLLM(" the stale request"))
    fresh = _worker(engine, ScriptedLLM(" the fresh request"))
    stale_batch = stale._claim(1)
    with session_factory(engine).begin() as session:  # the stale worker's lease lapses
        session.execute(update(Job).values(leased_until=db_now(-1)))
        assert jobs.release_expired(session) == 1
    asyncio.run(fresh._process(fresh._claim(1)))
    asyncio.run(stale._process(stale_batch))
    assert _rows(engine)[ticket] == (
        "done",
        "Thank you for getting in touch about the fresh request",
        "done",
        2,
    )
    with session_factory(engine)() as session:
        assert session.scalar(select(Job.lease_token)) == fresh.token
    assert _outcomes(stale).get("lease_lost") == 1 and "done" not in _outcomes(stale)


def test_a_staging_ticket_is_drafted_with_the_staging_configuration(engine):
    sessions = session_factory(engine)
    with sessions() as session:
        tenant = keys.create_tenant(session=session, name="platform", platform=True)
        key, _ = keys.create_key(session=session, tenant_id=tenant.id, scopes=["platform"])
        configs.create_version(
            session=session,
            name="drafts",
            environment=Environment.staging,
            body={"system_prompt": "Staging's instructions.", "max_tokens": 12, "stop": ["!"]},
            caller=Caller(key.id, tenant.id, frozenset({"platform"})),
        )
    (production,) = enqueue(engine, "acme", 1, intent=INTENT)
    (staging,) = enqueue(engine, "acme", 1, intent=INTENT, environment="staging")
    for ticket_id in (production, staging):
        _set_body(engine, ticket_id, f"Where is my card? (ticket {ticket_id})")
    llm = ScriptedLLM()
    worker = _worker(engine, llm, draft_max_tokens=30)
    asyncio.run(worker._process(worker._claim(2)))
    assert {row[0] for row in _rows(engine).values()} == {"done"}
    by_ticket = {
        ticket_id: next(
            c for c in llm.calls if f"(ticket {ticket_id})" in c["messages"][-2]["content"]
        )
        for ticket_id in (production, staging)
    }
    sent = by_ticket[staging]
    assert sent["messages"][0]["content"] == "Staging's instructions."
    assert (sent["max_tokens"], sent["stop"]) == (12, ["!"])
    sent = by_ticket[production]  # the defaults: the settings and the built-in prompt
    assert sent["messages"][0]["content"] != "Staging's instructions."
    assert (sent["max_tokens"], sent["stop"]) == (30, list(OPENING_STOP))


def test_each_ticket_is_triaged_by_the_version_of_its_environment(engine):
    with session_factory(engine).begin() as session:
        for version, state in ((1, "production"), (2, "candidate")):
            session.add(ModelVersion(model="ticket_triage", version=version, state=state))
    (production,) = enqueue(engine, "acme", 1)
    (staging,) = enqueue(engine, "acme", 1, environment="staging")
    worker = _worker(engine, ScriptedLLM())
    worker.triage = RecordingTriage()
    asyncio.run(worker._process(worker._claim(2)))
    assert sorted(v for v, _ in worker.triage.calls) == [1, 2]  # one call per version
    assert worker.triage.priorities == [2, 2]  # the worker's batches: Triton's second level
    with session_factory(engine)() as session:
        assert session.get(Ticket, production).model_version == "1"
        assert session.get(Ticket, staging).model_version == "2"  # the newest candidate
