"""`python -m export gpu-parity`: the served model on a GPU against the same file on the CPU.

What a GPU host serves is `ticket_intent` (text → intent) with its encoder on CUDA, or on
TensorRT in fp16 (export/device.py). This runs that file on Banking77's test texts once on the
CPU provider and once on each GPU accelerator, and reports how often the intents agree, each
side's accuracy and the median time per batch. Where onnxruntime has no GPU provider (no
onnxruntime-gpu, no CUDA device) it says so for that accelerator and measures nothing.
"""

import statistics
from pathlib import Path

from contracts.runtime import gpu_providers, missing_providers
from export.build import Predictions, hits, intent_predictions
from export.data import Split
from export.device import ACCELERATORS

# Intents that must agree between the GPU and the CPU: fp16 moves a few near-ties.
MIN_AGREEMENT = 0.99
WARMUP_TEXTS = 64  # TensorRT builds its engines on the first batches


def unavailable_reason(accelerator: str) -> str | None:
    """Why `accelerator` cannot run here (its provider, not the CPU fallback, is missing), or
    None."""
    import onnxruntime as ort

    missing = missing_providers(gpu_providers(accelerator)[:1])
    return f"onnxruntime {ort.__version__} here has no {missing[0]}" if missing else None


def compare(intent: Path, split: Split, intents: list[str], accelerator: str, cache: Path) -> dict:
    """The file on the CPU and on `accelerator`: agreement, accuracy and batch times."""
    reason = unavailable_reason(accelerator)
    if reason is not None:
        return {"accelerator": accelerator, "ran": False, "skipped": reason}
    cache.mkdir(parents=True, exist_ok=True)
    providers = gpu_providers(accelerator, cache_dir=str(cache))
    intent_predictions(intent, split.texts[:WARMUP_TEXTS], providers=providers)
    gpu = intent_predictions(intent, split.texts, providers=providers)
    cpu = intent_predictions(intent, split.texts)
    agree = sum(a == b for a, b in zip(cpu.intents, gpu.intents, strict=True))
    return {
        "accelerator": accelerator,
        "ran": True,
        "texts": len(split),
        "intent_agreement": round(agree / len(split), 4),
        "accuracy": {"cpu": _accuracy(cpu, split, intents), "gpu": _accuracy(gpu, split, intents)},
        "batch_ms_p50": {"cpu": _median_ms(cpu), "gpu": _median_ms(gpu)},
        "gpu_speedup_per_batch": round(_median_ms(cpu) / _median_ms(gpu), 2),
    }


def parity(intent: Path, split: Split, intents: list[str], cache: Path) -> list[dict]:
    return [compare(intent, split, intents, name, cache / name) for name in ACCELERATORS]


def _accuracy(predictions: Predictions, split: Split, intents: list[str]) -> float:
    return round(hits(predictions.intents, split, intents) / len(split), 4)


def _median_ms(predictions: Predictions) -> float:
    return round(1000 * statistics.median(predictions.batch_seconds), 2)
