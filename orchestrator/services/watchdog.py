"""Resource watchdog: host CPU and memory, this process's memory and the GPUs, as gauges.

The gauges are defined in `orchestrator.metrics` (ResourceGauges) and live on the app's own
registry, so `/metrics` shows them beside the request metrics. GPUs are read through NVML
(`nvidia-ml-py`, imported as `pynvml`); on a machine without a GPU or driver the GPU gauges
keep their HELP/TYPE lines and no samples, which tells a dashboard "no GPU here" instead of
"GPU idle".
"""

import logging
import threading
from typing import NamedTuple

import psutil
from prometheus_client import CollectorRegistry

from orchestrator.metrics import ResourceGauges

log = logging.getLogger(__name__)


class GpuReading(NamedTuple):
    index: int
    utilization_percent: float
    memory_used_bytes: int
    memory_total_bytes: int


class Nvml:
    """The GPUs as NVML sees them, or none: absence is reported once at info, never raised."""

    def __init__(self) -> None:
        self._pynvml = None
        self._read_failure_logged = False
        try:
            import pynvml

            pynvml.nvmlInit()
            count = pynvml.nvmlDeviceGetCount()
        except Exception as error:  # ImportError, or NVMLError when no driver or GPU exists
            log.info("no GPU gauges: NVML is unavailable (%s)", error)
            return
        if count == 0:
            log.info("no GPU gauges: NVML found no GPU")
            return
        self._pynvml = pynvml
        log.info("watching %d GPU(s) through NVML", count)

    @property
    def available(self) -> bool:
        return self._pynvml is not None

    def read(self) -> list[GpuReading]:
        """One reading per GPU; an empty list when NVML is absent or a read fails."""
        if self._pynvml is None:
            return []
        nvml = self._pynvml
        try:
            readings = []
            for index in range(nvml.nvmlDeviceGetCount()):
                handle = nvml.nvmlDeviceGetHandleByIndex(index)
                memory = nvml.nvmlDeviceGetMemoryInfo(handle)
                utilization = nvml.nvmlDeviceGetUtilizationRates(handle)
                readings.append(
                    GpuReading(index, float(utilization.gpu), int(memory.used), int(memory.total))
                )
            return readings
        except nvml.NVMLError as error:  # e.g. a GPU fell off the bus: skip, say so once
            if not self._read_failure_logged:
                log.warning("reading the GPUs through NVML failed: %s", error)
                self._read_failure_logged = True
            return []


_shared_nvml: Nvml | None = None
_shared_nvml_lock = threading.Lock()


def shared_nvml() -> Nvml:
    """One NVML per process: initialising it costs tens of milliseconds, and absence is
    logged once rather than on every memory snapshot."""
    global _shared_nvml
    with _shared_nvml_lock:
        if _shared_nvml is None:
            _shared_nvml = Nvml()
        return _shared_nvml


def host_memory_used_bytes() -> int:
    """Memory in use that the kernel cannot hand out again: total minus available.

    psutil's own `used` leaves out page cache and buffers in a way that differs per OS;
    `total - available` is what a model load actually takes away from the host.
    """
    return _used_bytes(psutil.virtual_memory())


def _used_bytes(memory) -> int:
    return int(memory.total - memory.available)


def memory_snapshot() -> dict:
    """Host and per-GPU memory in use now, for a before/after comparison around a model load.

    `{"host_used_bytes": int, "gpu_used_bytes": {"0": int, ...}}`; the GPU mapping is empty
    where there is no GPU.
    """
    return {
        "host_used_bytes": host_memory_used_bytes(),
        "gpu_used_bytes": {str(g.index): g.memory_used_bytes for g in shared_nvml().read()},
    }


def memory_change(before: dict, after: dict) -> dict:
    """`after - before` for each figure of two `memory_snapshot()`s (GPUs present in both)."""
    gpus = before["gpu_used_bytes"].keys() & after["gpu_used_bytes"].keys()
    return {
        "host_used_bytes": after["host_used_bytes"] - before["host_used_bytes"],
        "gpu_used_bytes": {
            gpu: after["gpu_used_bytes"][gpu] - before["gpu_used_bytes"][gpu]
            for gpu in sorted(gpus)
        },
    }


class HostCpu:
    """Host CPU busy percent between two calls, kept per instance.

    `psutil.cpu_percent(interval=None)` keeps its previous reading in a module global, so two
    callers in one process (the app and a test, or two apps) would steal each other's interval.
    """

    def __init__(self) -> None:
        self._last = psutil.cpu_times()

    def percent(self) -> float:
        now = psutil.cpu_times()
        total = _total(now) - _total(self._last)
        idle = _idle(now) - _idle(self._last)
        self._last = now
        if total <= 0:
            return 0.0
        return max(0.0, min(100.0, 100.0 * (total - idle) / total))


def _idle(times) -> float:
    return times.idle + getattr(times, "iowait", 0.0)


def _total(times) -> float:
    # Linux counts guest time inside user and nice as well; psutil subtracts it the same way.
    return sum(times) - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)


class ResourceWatchdog:
    """Samples host, process and GPU resources into gauges every `interval_s` seconds.

    `start()` takes a first sample at once and then samples on a daemon thread (so that it
    works the same under the app's event loop and in the standalone worker); `stop()` ends
    the thread. `sample()` may also be called directly, e.g. just before a scrape.
    """

    def __init__(self, registry: CollectorRegistry, interval_s: float = 5.0) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be positive")
        self.interval_s = interval_s
        self._gauges = ResourceGauges(registry)
        self._cpu = HostCpu()
        self._process = psutil.Process()
        self._nvml: Nvml | None = None  # opened on the first sample, not at import or build
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self.sample()
        self._thread = threading.Thread(target=self._run, name="resource-watchdog", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def sample(self) -> None:
        gauges = self._gauges
        memory = psutil.virtual_memory()
        gauges.cpu_percent.set(self._cpu.percent())
        gauges.memory_used.set(_used_bytes(memory))
        gauges.memory_total.set(memory.total)
        gauges.process_rss.set(self._process.memory_info().rss)
        if self._nvml is None:
            self._nvml = Nvml()
        for gpu in self._nvml.read():
            label = str(gpu.index)
            gauges.gpu_utilization.labels(label).set(gpu.utilization_percent)
            gauges.gpu_memory_used.labels(label).set(gpu.memory_used_bytes)
            gauges.gpu_memory_total.labels(label).set(gpu.memory_total_bytes)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.sample()
            except Exception:  # a failed reading must not end the watchdog for good
                log.warning("resource sample failed", exc_info=True)
