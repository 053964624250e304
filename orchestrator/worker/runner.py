"""The ticket worker: claims jobs, triages them in one ensemble call, then drafts replies.

It runs inside the orchestrator by default (started by the app's lifespan) or alone with
`python -m orchestrator worker`; any number may run against one database. It holds at most
`worker_batch` jobs at once and renews their leases every third of `job_lease_s`; each job's
outcome is written on its own, in one transaction with its ticket, and only while this
worker still holds the job. While Triton is unavailable a job waits with a capped backoff
without spending its attempts; its own failures are retried until `job_max_attempts`, then
recorded on the ticket. Database calls run in threads so the event loop keeps serving.
"""

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.db.models import Ticket, utcnow
from orchestrator.metrics import Metrics
from orchestrator.services.canary import CanaryWatch
from orchestrator.services.configs import ConfigStore, draft_options
from orchestrator.services.drafts import Draft, stream_draft
from orchestrator.services.failover import FailoverLLM
from orchestrator.services.generation import GenerationTimer
from orchestrator.services.tickets import store_triage
from orchestrator.services.triage import ticket_text, triage_texts
from orchestrator.services.versions import VersionStore
from orchestrator.settings import OrchestratorSettings
from orchestrator.triton.llm_client import LLMClient, LLMUnavailable
from orchestrator.triton.triage_client import TriageClient, TritonUnavailable
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
        llm: FailoverLLM | LLMClient,
        metrics: Metrics,
        settings: OrchestratorSettings,
        configs: ConfigStore | None = None,
        versions: VersionStore | None = None,
        canary: CanaryWatch | None = None,
    ):
        self.sessions, self.triage, self.llm = sessions, triage, llm
        self.metrics, self.settings = metrics, settings
        # The app hands over its own store, so that a configuration written there applies
        # here at once; a worker process reads through its own.
        self.configs = configs or ConfigStore(sessions, settings)
        self.versions = versions or VersionStore(sessions, settings.version_cache_s)
        self.canary = canary  # records each triage call's outcome per model version
        self.token = uuid.uuid4().hex  # this worker's lease token
        self.backoff = jobs.Backoff(
            settings.job_backoff_base_s, settings.job_backoff_max_s, settings.job_max_attempts
        )
        self._wake = asyncio.Event()
        self._drafts = asyncio.Semaphore(settings.worker_drafts)
        self._in_flight: set[asyncio.Task] = set()
        self._held: set[int] = set()  # ids of the jobs claimed and not settled yet
        self._outages = 0  # dependency failures in a row: how long a waiting job sleeps
        self._stopping = False
        # Told each settled ticket's id, on the event loop (the app wakes waiting requests).
        self.on_settled: Callable[[int], None] | None = None

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
                room = self.settings.worker_batch - len(self._held)  # jobs, not batches
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

        The jobs a cancelled task held go back to the queue at once, their attempt not
        counted; a job whose release fails runs again when its lease lapses.
        """
        self._stopping = True
        self._wake.set()
        if not self._in_flight:
            return
        _, pending = await asyncio.wait(self._in_flight, timeout=timeout_s)
        held = sorted(self._held)  # before the cancelled tasks let go of their jobs
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
        for job_id in held:
            release = partial(jobs.release, job_id=job_id, token=self.token)
            with contextlib.suppress(Exception):  # settled meanwhile, or the database is down
                await self._db(self._write, job_id, release)

    # -- steps -------------------------------------------------------------------------

    async def _process(self, claimed: list[Claimed]) -> None:
        """Triage every claimed ticket that has none yet, then draft and settle each one."""
        try:
            claimed = await self._triage(claimed)
            await asyncio.gather(*(self._job(c) for c in claimed))
        except Exception:  # a bug: only the jobs not settled yet go back
            log.exception("worker failed on jobs %s", [c.job_id for c in claimed])
            unsettled = [c for c in claimed if c.job_id in self._held]
            await self._settle_all(unsettled, self._retry_write, "internal error; see the log")
        finally:
            for c in claimed:  # whatever was not settled is left to its lease
                self._held.discard(c.job_id)

    async def _triage(self, claimed: list[Claimed]) -> list[Claimed]:
        """Triage the batch in one call; the jobs this worker still holds come back."""
        untriaged = [c.ticket for c in claimed if c.ticket.intent is None]
        if not untriaged:
            return claimed
        texts = [ticket_text(t.subject, t.body) for t in untriaged]
        try:
            # Each ticket meets the model version of its environment, chosen by its text,
            # so that a retried job meets the same version while the rollout stands.
            results = await triage_texts(
                self.triage,
                texts,
                self.metrics,
                versions=self.versions,
                environments=[t.environment for t in untriaged],
                watch=self.canary,
            )
        except TritonUnavailable as error:
            self._outages += 1
            await self._settle_all(claimed, self._wait_write, f"triage unavailable: {error}")
            return []
        self._outages = 0
        by_ticket = {t.id: r for t, r in zip(untriaged, results, strict=True)}
        held = await self._db(self._store_triage, claimed, by_ticket)
        for c in claimed:
            if c.job_id not in held:
                self._lease_lost(c.job_id, "store its triage")
            elif c.ticket.id in by_ticket:
                store_triage(c.ticket, by_ticket[c.ticket.id])  # the copy the draft reads
        return [c for c in claimed if c.job_id in held]

    async def _job(self, claimed: Claimed) -> None:
        """Draft one reply and write the job's outcome, whatever it is."""
        try:
            draft = await self._draft(claimed)
        except LLMUnavailable as error:
            self._outages += 1
            await self._settle(claimed, self._wait_write, f"LLM unavailable: {error}")
            return
        except Exception:
            log.exception("worker failed on job %d", claimed.job_id)
            await self._settle(claimed, self._retry_write, "internal error; see the worker's log")
            return
        self._outages = 0
        await self._settle(claimed, self._done_write, draft)

    async def _draft(self, claimed: Claimed) -> Draft:
        ticket, last_attempt = claimed.ticket, claimed.attempts >= self.backoff.max_attempts
        # The environment of the key that submitted the ticket, stored with it at intake.
        config = await self.configs.drafts(ticket.environment)
        async with self._drafts:
            timer = GenerationTimer()
            draft = None
            async for item in stream_draft(
                self.llm,
                ticket.intent,
                ticket.subject,
                ticket.body,
                timeout_s=self.settings.draft_timeout_s,
                fallback_when_down=last_attempt,
                priority="background",  # nobody is watching: chat replies go first
                **draft_options(config, self.settings),
            ):
                if isinstance(item, Draft):
                    draft = item
                elif isinstance(item, str):
                    timer.token()
        if draft.generation is not None:
            timer.record(self.metrics, "draft", draft.generation)
        return draft

    async def _settle_all(self, claimed: list[Claimed], write: Callable, detail) -> None:
        for c in claimed:
            await self._settle(c, write, detail)

    async def _settle(self, claimed: Claimed, write: Callable, detail) -> None:
        """Write one job's outcome; refused when this worker's lease on it has lapsed."""
        if claimed.job_id not in self._held:
            return  # housekeeping found the lease lapsed, and counted it
        try:
            outcome = await self._db(self._write, claimed.job_id, partial(write, claimed, detail))
        except jobs.LeaseLost:
            self._lease_lost(claimed.job_id, "write its outcome")
            return
        except Exception:
            log.exception("could not record job %d; it runs again later", claimed.job_id)
            return
        finally:
            self._held.discard(claimed.job_id)
        self.metrics.jobs_processed.labels(outcome).inc()
        if self.on_settled is not None:
            self.on_settled(claimed.ticket.id)

    def _lease_lost(self, job_id: int, what: str) -> None:
        self._held.discard(job_id)
        log.warning("lease on job %d lapsed before this worker could %s; dropped", job_id, what)
        self.metrics.jobs_processed.labels("lease_lost").inc()

    def _wait_delay_s(self) -> float:
        return self.backoff.delay_s(self._outages)

    # -- database work, run in a thread ------------------------------------------------

    async def _db(self, function: Callable, *args):
        return await asyncio.to_thread(function, *args)

    def _write(self, job_id: int, write: Callable[[Session], str]) -> str:
        """One job's outcome in one transaction; the job is no longer held once it commits."""
        try:
            with self.sessions.begin() as session:
                return write(session)
        finally:
            self._held.discard(job_id)  # before housekeeping could take it for a lost lease

    def _housekeeping(self) -> None:
        held = sorted(self._held)
        with self.sessions.begin() as session:
            kept = jobs.renew(
                session, token=self.token, job_ids=held, lease_s=self.settings.job_lease_s
            )
            released = jobs.release_expired(session)
        for job_id in set(held) - kept:
            if job_id in self._held:  # not settled meanwhile: another worker may have it
                self._lease_lost(job_id, "renew its lease")
        if released:
            log.warning("returned %d jobs of a stopped worker to the queue", released)

    def _claim(self, limit: int) -> list[Claimed]:
        """Claim jobs and mark their tickets `processing`; the tickets come back loaded."""
        with self.sessions.begin() as session:
            claimed = jobs.claim(
                session, token=self.token, limit=limit, lease_s=self.settings.job_lease_s
            )
            if not claimed:
                return []
            ids = [job.ticket_id for job in claimed]
            tickets = {t.id: t for t in session.scalars(select(Ticket).where(Ticket.id.in_(ids)))}
            for ticket in tickets.values():
                ticket.status = "processing"
        self._held.update(job.id for job in claimed)  # sessions keep attributes after commit
        return [Claimed(job.id, job.attempts, tickets[job.ticket_id]) for job in claimed]

    def _store_triage(self, claimed: list[Claimed], results: dict) -> set[int]:
        """Store triage only on tickets whose jobs this worker still holds (renewing them)."""
        with self.sessions.begin() as session:
            held = jobs.renew(
                session,
                token=self.token,
                job_ids=[c.job_id for c in claimed],
                lease_s=self.settings.job_lease_s,
            )
            for c in claimed:
                if c.job_id in held and c.ticket.id in results:
                    store_triage(session.get(Ticket, c.ticket.id), results[c.ticket.id])
        return held

    # Each write runs after its job's conditional update succeeded, in the same transaction.

    def _done_write(self, claimed: Claimed, draft: Draft, session: Session) -> str:
        jobs.finish(session, job_id=claimed.job_id, token=self.token)
        ticket = session.get(Ticket, claimed.ticket.id)
        ticket.draft_text, ticket.draft_source = draft.text, draft.source
        ticket.status, ticket.error, ticket.processed_at = "done", None, utcnow()
        return "done"

    def _retry_write(self, claimed: Claimed, error: str, session: Session) -> str:
        ticket = session.get(Ticket, claimed.ticket.id)
        if claimed.attempts >= self.backoff.max_attempts:
            jobs.fail(session, job_id=claimed.job_id, token=self.token, error=error)
            ticket.status = "failed"
            ticket.error = f"gave up after {claimed.attempts} attempts: {error}"
            ticket.processed_at = utcnow()
            return "failed"
        delay_s = self.backoff.delay_s(claimed.attempts)
        jobs.retry(session, job_id=claimed.job_id, token=self.token, error=error, delay_s=delay_s)
        _requeued(ticket)
        return "retry"

    def _wait_write(self, claimed: Claimed, error: str, session: Session) -> str:
        delay_s = self._wait_delay_s()
        jobs.wait(session, job_id=claimed.job_id, token=self.token, error=error, delay_s=delay_s)
        _requeued(session.get(Ticket, claimed.ticket.id))
        return "wait"


def _requeued(ticket: Ticket) -> None:
    if ticket.status == "processing":  # waiting again; an agent's status is left alone
        ticket.status = "queued"
