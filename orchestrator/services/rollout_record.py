"""The versions' rollout copied into MLflow's Model Registry (contracts/registry.py) after each
move, so that the registry MLOps teams browse shows which version is production, canary or
candidate, beside the training runs that made them.

The database stays the truth that routing reads; MLflow is a record. So a record runs after the
move is committed, in a worker thread (MLflow's client blocks), waits at most `timeout_s`
(an MLflow server that is down would otherwise hold the admin's request through its client's
retries), and a failure is logged and counted, never raised: the move stands. Records are
written one at a time, each from the database's state when it starts, so the last one written
is the latest state, and a record that failed is mended by the next move of that model.
"""

import logging
import threading

import anyio
from prometheus_client import Counter
from sqlalchemy.orm import Session, sessionmaker

from contracts.registry import RegistrySettings, record_states
from orchestrator.services.versions import model_rows

log = logging.getLogger(__name__)


class RolloutRecorder:
    def __init__(
        self, settings: RegistrySettings, sessions: sessionmaker[Session], failures: Counter
    ):
        self.settings, self.sessions, self.failures = settings, sessions, failures
        self._lock = threading.Lock()

    async def record(self, model: str) -> None:
        """Copy `model`'s states into MLflow; never raises, waits at most `timeout_s`."""
        if not self.settings.enabled:
            return
        with anyio.move_on_after(self.settings.timeout_s) as waited:
            try:
                # abandoned on timeout: the thread finishes (or fails) on its own, in the lock
                await anyio.to_thread.run_sync(self._record, model, abandon_on_cancel=True)
            except Exception:
                log.warning("recording the versions of %r in MLflow failed", model, exc_info=True)
                self.failures.labels("error").inc()
        if waited.cancelled_caught:
            log.warning(
                "recording the versions of %r in MLflow took over %g s; left running",
                model,
                self.settings.timeout_s,
            )
            self.failures.labels("timeout").inc()

    def _record(self, model: str) -> None:
        with self._lock:
            with self.sessions() as session:
                states = {row.version: row.state for row in model_rows(session, model)}
            if states:
                record_states(self.settings, model, states)
