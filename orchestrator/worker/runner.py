"""The ticket worker: claims jobs, triages them in one ensemble call, then drafts replies.

It runs inside the orchestrator by default (started by the app's lifespan) or alone with
`python -m orchestrator worker`; any number may run against one database. While Triton is
unavailable a job is retried with exponential backoff; after the last attempt the failure is
recorded on the ticket. Database calls run in threads so the event loop keeps serving.
"""

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.db.models import Job, Ticket, utcnow
from orchestrator.metrics import Metrics
from orchestrator.services.drafts import Draft, stream_draft
from orchestrator.services.generation import GenerationTimer
from orchestrator.services.tickets import store_triage
from orchestrator.services.triage import ticket_text, triage_texts
from orchestrator.settings import OrchestratorSettings
from orchestrator.triton.llm_client import LLMClient, LLMUnavailable
from orchestrator.triton.triage_client import TriageClient, TritonRejected, TritonUnavailable
from orchestrator.worker import queue as jobs

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Claimed:
    """A job this worker holds, with its attempt count and its ticket as loaded at the claim."""

    job_id: int
    attempts: int
    ticket: Ticket


class Worker:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        triage: TriageClient,
        llm: LLMClient,
        metrics: Metrics,
        settings: OrchestratorSettings,
    ):
        self.sessions, self.triage, self.llm = sessions, triage, llm
        self.metrics, self.settings = metrics, settings
        self.token = uuid.uuid4().hex  # this worker's lease token
        self.backoff = jobs.Backoff(
            settings.job_backoff_base_s, settings.job_backoff_max_s, settings.job_max_attempts
        )
        self._wake = asyncio.Event()
        self._drafts = asyncio.Semaphore(settings.worker_drafts)
        self._in_flight: set[asyncio.Task] = set()
        self._stopping = False

    def wake(self) -> None:
        """A job was stored: look now rather than at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        """Claim and process jobs until stop(); never raises on a dependency's failure."""
        log.info("worker %s started", self.token[:8])
        last_housekeeping = 0.0
        while not self._stopping:
            try:
                if time.monotonic() - last_housekeeping > self.settings.job_lease_s / 3:
                    await self._db(self._housekeeping)
                    last_housekeeping = time.monotonic()
                room = self.settings.worker_batch - len(self._in_flight)
                claimed = await self._db(self._claim, room) if room > 0 else []
            except Exception:  # the database is down: wait, do not die
                log.exception("worker could not reach the database")
                claimed = []
            if claimed:
                task = asyncio.create_task(self._process(claimed))
                self._in_flight.add(task)
                task.add_done_callback(self._in_flight.discard)
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.worker_poll_s)

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Stop claiming; let work in flight finish for a while, then cancel it.

        A cancelled job keeps its lease until it expires and then runs again elsewhere.
        """
        self._stopping = True
        self._wake.set()
        if self._in_flight:
            _, pending = await asyncio.wait(self._in_flight, timeout=timeout_s)
            for task in pending:
                task.cancel()

    # -- steps -------------------------------------------------------------------------

    async def _process(self, claimed: list[Claimed]) -> None:
        """Triage every claimed ticket that has none yet, then draft each one."""
        try:
            untriaged = [c.ticket for c in claimed if c.ticket.intent is None]
            if untriaged and not await self._triage(claimed, untriaged):
                return
            await asyncio.gather(*(self._draft(c) for c in claimed))
        except Exception:
            log.exception("worker failed on jobs %s", [c.job_id for c in claimed])
            await self._retry_all(claimed, "internal error; see the worker's log")

    async def _triage(self, claimed: list[Claimed], untriaged: list[Ticket]) -> bool:
        texts = [ticket_text(t.subject, t.body) for t in untriaged]
        try:
            results = await triage_texts(self.triage, texts, self.metrics)
        except TritonUnavailable as error:
            await self._retry_all(claimed, f"triage unavailable: {error}")
            return False
        except TritonRejected as error:  # intake validation should make this unreachable
            await self._retry_all(claimed, f"triage rejected the text: {error}")
            return False
        await self._db(
            self._store_triage, {t.id: r for t, r in zip(untriaged, results, strict=True)}
        )
        for ticket, result in zip(untriaged, results, strict=True):
            store_triage(ticket, result)  # the in-memory copies the drafts read
        return True

    async def _draft(self, claimed: Claimed) -> None:
        ticket, last_attempt = claimed.ticket, claimed.attempts >= self.backoff.max_attempts
        async with self._drafts:
            timer = GenerationTimer()
            try:
                draft = None
                async for item in stream_draft(
                    self.llm,
                    ticket.intent,
                    ticket.subject,
                    ticket.body,
                    max_tokens=self.settings.draft_max_tokens,
                    timeout_s=self.settings.draft_timeout_s,
                    fallback_when_down=last_attempt,
                ):
                    if isinstance(item, Draft):
                        draft = item
                    else:
                        timer.token()
            except LLMUnavailable as error:
                await self._db(self._retry, claimed.job_id, f"LLM unavailable: {error}")
                return
        if draft.generation is not None:
            timer.record(self.metrics, "draft", draft.generation)
        await self._db(self._store_draft, claimed.job_id, ticket.id, draft)

    async def _retry_all(self, claimed: list[Claimed], error: str) -> None:
        for c in claimed:
            await self._db(self._retry, c.job_id, error)

    # -- database work, run in a thread ------------------------------------------------

    async def _db(self, function: Callable, *args):
        return await asyncio.to_thread(function, *args)

    def _housekeeping(self) -> None:
        with self.sessions() as session:
            jobs.renew(session, self.token, self.settings.job_lease_s)
            released = jobs.release_expired(session)
        if released:
            log.warning("returned %d jobs of a stopped worker to the queue", released)

    def _claim(self, limit: int) -> list[Claimed]:
        """Claim jobs and mark their tickets `processing`; the tickets come back loaded."""
        with self.sessions() as session:
            claimed = jobs.claim(session, self.token, limit, self.settings.job_lease_s)
            if not claimed:
                return []
            ids = [job.ticket_id for job in claimed]
            tickets = {t.id: t for t in session.scalars(select(Ticket).where(Ticket.id.in_(ids)))}
            for ticket in tickets.values():
                ticket.status = "processing"
            session.commit()  # sessions keep attributes loaded after commit (expire_on_commit)
            return [Claimed(job.id, job.attempts, tickets[job.ticket_id]) for job in claimed]

    def _store_triage(self, results: dict) -> None:
        with self.sessions() as session:
            for ticket_id, result in results.items():
                store_triage(session.get(Ticket, ticket_id), result)
            session.commit()

    def _store_draft(self, job_id: int, ticket_id: int, draft: Draft) -> None:
        with self.sessions() as session:
            ticket = session.get(Ticket, ticket_id)
            ticket.draft_text, ticket.draft_source = draft.text, draft.source
            ticket.status, ticket.error, ticket.processed_at = "done", None, utcnow()
            jobs.finish(session, session.get(Job, job_id))
        self.metrics.jobs_processed.labels("done").inc()

    def _retry(self, job_id: int, error: str) -> None:
        with self.sessions() as session:
            job = session.get(Job, job_id)
            ticket = session.get(Ticket, job.ticket_id)
            outcome = jobs.retry_or_fail(session, job, ticket, error, self.backoff)
        self.metrics.jobs_processed.labels(outcome).inc()
