"""A light asyncio load generator: N workers, one request each in flight, perf_counter timings."""

import asyncio
import resource
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from export.metrics import latency_summary


@dataclass
class RunResult:
    requests: int
    errors: int
    seconds: float
    latencies: list[float]
    client_cpu_seconds: float

    def summary(self, cores: int) -> dict:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "throughput_per_s": round(self.requests / self.seconds, 1),
            **latency_summary(self.latencies or [0.0]),
            # The load generator's own CPU: a share of the whole machine, and CPU s per wall s.
            "client_cpu_share": round(self.client_cpu_seconds / (self.seconds * cores), 3),
            "client_cpu_per_wall": round(self.client_cpu_seconds / self.seconds, 3),
        }


def median_of_runs(runs: list[dict], each: str | None = "throughput_per_s") -> dict:
    """Each numeric figure's median over repeated runs (these machines are noisy).

    A figure missing from a run (None) is left out of its median; ints stay ints. `each` is
    kept per run too, so that the spread stays visible beside the median.
    """
    merged: dict = {}
    for key, value in runs[0].items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        values = [r[key] for r in runs if r[key] is not None]
        median = statistics.median(values)
        merged[key] = round(median) if isinstance(value, int) else round(float(median), 3)
    if each is not None:
        merged["runs"] = len(runs)
        merged[f"{each}_each_run"] = [r[each] for r in runs]
    return merged


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def run_closed_loop(
    call: Callable[[int], Awaitable[None]], total: int, concurrency: int
) -> RunResult:
    """`concurrency` workers send `total` requests; call(i) sends request i and awaits it."""
    latencies: list[float] = []
    errors = 0
    next_index = 0

    async def worker() -> None:
        nonlocal next_index, errors
        while next_index < total:
            i = next_index
            next_index += 1
            started = time.perf_counter()
            try:
                await call(i)
                latencies.append(time.perf_counter() - started)
            except Exception:
                errors += 1

    cpu_before, started = _cpu_seconds(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    seconds = time.perf_counter() - started
    return RunResult(total, errors, seconds, latencies, _cpu_seconds() - cpu_before)
