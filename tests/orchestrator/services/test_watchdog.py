"""The resource watchdog on this machine's real CPU, memory and (absent or present) GPUs."""

import logging
import sys
import time
import types

import psutil
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from orchestrator.services.watchdog import (
    Nvml,
    ResourceWatchdog,
    memory_change,
    memory_snapshot,
)

HOST_GAUGES = (
    "support_host_cpu_percent",
    "support_host_memory_used_bytes",
    "support_host_memory_total_bytes",
    "support_process_resident_memory_bytes",
)
GPU_GAUGES = (
    "support_gpu_utilization_percent",
    "support_gpu_memory_used_bytes",
    "support_gpu_memory_total_bytes",
)
NVML_PRESENT = Nvml().available


def _samples(registry: CollectorRegistry) -> dict[str, list]:
    """Samples by metric name, as a scrape would see them."""
    return {family.name: family.samples for family in registry.collect()}


def test_sample_sets_host_gauges_to_real_values():
    registry = CollectorRegistry()
    watchdog = ResourceWatchdog(registry)
    _burn_cpu(0.2)
    watchdog.sample()
    value = {name: samples[0].value for name, samples in _samples(registry).items() if samples}
    memory = psutil.virtual_memory()
    assert value["support_host_memory_total_bytes"] == memory.total
    assert 0 < value["support_host_memory_used_bytes"] <= memory.total
    assert 0 < value["support_process_resident_memory_bytes"] < memory.total
    assert value["support_process_resident_memory_bytes"] == pytest.approx(
        psutil.Process().memory_info().rss, rel=0.2
    )
    assert 0.0 < value["support_host_cpu_percent"] <= 100.0  # this test kept a core busy


def test_every_gauge_is_in_the_exposition_text():
    registry = CollectorRegistry()
    ResourceWatchdog(registry).sample()
    text = generate_latest(registry).decode()
    for name in HOST_GAUGES:
        assert f"# TYPE {name} gauge" in text
        assert any(line.startswith(f"{name} ") for line in text.splitlines()), name
    for name in GPU_GAUGES:  # HELP/TYPE always, samples only where a GPU exists
        assert f"# TYPE {name} gauge" in text


def test_start_samples_at_once_then_on_its_thread_and_stop_ends_it():
    registry = CollectorRegistry()
    watchdog = ResourceWatchdog(registry, interval_s=0.05)
    watchdog.start()
    try:
        assert registry.get_sample_value("support_host_memory_total_bytes") > 0
        thread = watchdog._thread
        assert thread is not None and thread.daemon and thread.is_alive()
        watchdog._gauges.memory_total.set(0)
        _wait_for(lambda: registry.get_sample_value("support_host_memory_total_bytes") > 0)
        watchdog.start()  # a second start keeps the one thread
        assert watchdog._thread is thread
    finally:
        watchdog.stop()
    assert not thread.is_alive()


def test_without_nvml_gpu_gauges_stay_empty_and_absence_is_logged_once(monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # `import pynvml` now raises ImportError
    registry = CollectorRegistry()
    watchdog = ResourceWatchdog(registry)
    with caplog.at_level(logging.INFO, logger="orchestrator.services.watchdog"):
        for _ in range(3):
            watchdog.sample()
    samples = _samples(registry)
    for name in GPU_GAUGES:
        assert samples[name] == []
    absence = [r for r in caplog.records if "NVML is unavailable" in r.getMessage()]
    assert len(absence) == 1 and absence[0].levelno == logging.INFO


@pytest.mark.skipif(NVML_PRESENT, reason="this machine has a GPU: the absent path is tested above")
def test_on_a_machine_without_gpu_the_real_nvml_path_leaves_gpu_gauges_empty():
    registry = CollectorRegistry()
    ResourceWatchdog(registry).sample()
    assert all(_samples(registry)[name] == [] for name in GPU_GAUGES)
    assert memory_snapshot()["gpu_used_bytes"] == {}


@pytest.mark.skipif(not NVML_PRESENT, reason="no GPU or NVML driver on this machine")
def test_with_a_gpu_each_gauge_has_a_sample_per_gpu():
    registry = CollectorRegistry()
    ResourceWatchdog(registry).sample()
    samples = _samples(registry)
    gpus = {s.labels["gpu"] for s in samples["support_gpu_memory_total_bytes"]}
    assert gpus and gpus == set(memory_snapshot()["gpu_used_bytes"])
    for sample in samples["support_gpu_memory_total_bytes"]:
        assert sample.value > 0
    for sample in samples["support_gpu_utilization_percent"]:
        assert 0 <= sample.value <= 100


def test_gpu_readings_become_gauges_labelled_by_index(monkeypatch):
    """No GPU here: a stand-in with NVML's call names checks how readings become samples."""
    monkeypatch.setitem(sys.modules, "pynvml", _StandInNvml(gpus=2))
    registry = CollectorRegistry()
    ResourceWatchdog(registry).sample()
    for gpu in ("0", "1"):
        labels = {"gpu": gpu}
        assert registry.get_sample_value("support_gpu_utilization_percent", labels) == 42.0
        assert registry.get_sample_value("support_gpu_memory_used_bytes", labels) == 3 << 30
        assert registry.get_sample_value("support_gpu_memory_total_bytes", labels) == 80 << 30


def test_a_failing_gpu_read_is_skipped_not_raised(monkeypatch):
    stand_in = _StandInNvml(gpus=1)
    monkeypatch.setitem(sys.modules, "pynvml", stand_in)
    nvml = Nvml()
    assert nvml.available
    stand_in.broken = True
    assert nvml.read() == []


def test_memory_snapshot_reads_host_memory_and_change_subtracts_it():
    snapshot = memory_snapshot()
    memory = psutil.virtual_memory()
    assert set(snapshot) == {"host_used_bytes", "gpu_used_bytes"}
    # Other processes share this host, so the two readings may differ a little.
    assert abs(snapshot["host_used_bytes"] - (memory.total - memory.available)) < memory.total / 20
    before = {"host_used_bytes": 1000, "gpu_used_bytes": {"0": 500, "1": 70}}
    after = {"host_used_bytes": 400, "gpu_used_bytes": {"0": 900}}  # GPU 1 vanished
    assert memory_change(before, after) == {"host_used_bytes": -600, "gpu_used_bytes": {"0": 400}}
    assert memory_change(snapshot, snapshot)["host_used_bytes"] == 0


def _burn_cpu(seconds: float) -> None:
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        pass


def _wait_for(condition, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "the watchdog thread did not sample"
        time.sleep(0.01)


class _StandInNvml(types.ModuleType):
    """The few `pynvml` calls the watchdog makes, answering fixed readings."""

    class NVMLError(Exception):
        pass

    def __init__(self, gpus: int) -> None:
        super().__init__("pynvml")
        self.gpus = gpus
        self.broken = False

    def nvmlInit(self) -> None:
        pass

    def nvmlDeviceGetCount(self) -> int:
        if self.broken:
            raise self.NVMLError("GPU is lost")
        return self.gpus

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetMemoryInfo(self, handle: int):
        return types.SimpleNamespace(used=3 << 30, total=80 << 30, free=77 << 30)

    def nvmlDeviceGetUtilizationRates(self, handle: int):
        return types.SimpleNamespace(gpu=42, memory=10)
