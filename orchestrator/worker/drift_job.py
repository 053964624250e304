"""The worker's periodic drift pass, every DRIFT_INTERVAL_S (0: never).

Any number of workers may run it: a worker skips its turn when another stored a pass within
the last 90 % of the interval, so that a fleet makes about one pass per interval (two may
coincide; that costs CPU, not correctness). A failed pass is logged and tried next interval.
Each pass also runs the `side_passes` (credit scoring's PSI), each failing on its own.
"""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta

from orchestrator.db.models import utcnow
from orchestrator.services.drift import runs
from orchestrator.services.drift.monitor import DriftMonitor

log = logging.getLogger(__name__)


class DriftJob:
    def __init__(
        self,
        monitor: DriftMonitor,
        interval_s: float,
        side_passes: Sequence[Callable[[], Awaitable[object]]] = (),
    ):
        self.monitor, self.interval_s, self.side_passes = monitor, interval_s, side_passes
        self._stop = asyncio.Event()

    async def run(self) -> None:
        """Until stop(): wait an interval, then pass unless another worker just did."""
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.interval_s)
                return
            try:
                if not await asyncio.to_thread(self._due):
                    continue
                await self.monitor.run_pass()
            except Exception:  # Triton or the database is down, or a bug: next interval
                log.exception("drift pass failed")
            for side_pass in self.side_passes:
                try:
                    await side_pass()
                except Exception:
                    log.exception("drift side pass %r failed", side_pass)

    def stop(self) -> None:
        self._stop.set()

    def _due(self) -> bool:
        latest = self.monitor.in_session(runs.latest_created_at)
        return latest is None or utcnow() - latest >= timedelta(seconds=0.9 * self.interval_s)
