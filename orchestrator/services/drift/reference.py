"""The training reference: a fixed sample of Banking77's training texts, with what the served
model makes of them, cached on disk per model version.

The sample is spread across intents in turn, so that it holds every intent about equally, as
Banking77's test split and a support desk's steady traffic do, rather than the training split's
imbalance. Its predictions and embeddings come from Triton, as the window's do, so that both
sides are measured by the same model; the cache is trusted only while a probe of its first
texts, sent as one batch as when the cache was written (padding, and so INT8 rounding, depends
on the batch), still gets the same confidences: a model rebuilt under the same version number
does not.
"""

import csv
import hashlib
import logging
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from orchestrator.triton.embed_client import EmbeddingClient
from orchestrator.triton.triage_client import TriageClient

log = logging.getLogger(__name__)
PROBE = 8  # texts re-predicted to check a cached reference against the served model
BATCH = 64


@dataclass(frozen=True)
class Observed:
    """Texts with the model's view of them: one row per text, in order."""

    texts: list[str]
    intents: list[str]
    confidences: np.ndarray  # float32
    embeddings: np.ndarray  # float32, one row per text
    model_version: str | None = None
    probe: np.ndarray | None = None  # confidences of the first PROBE texts sent as one batch

    def __len__(self) -> int:
        return len(self.texts)


def sample_texts(path: Path, size: int) -> list[str]:
    """`size` training texts taken across intents in turn (each intent's first, its second, ...)."""
    by_intent: dict[str, list[str]] = {}
    with path.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            by_intent.setdefault(row["category"], []).append(row["text"].strip())
    chosen: list[str] = []
    for rank in range(max(map(len, by_intent.values()), default=0)):
        chosen += [texts[rank] for texts in by_intent.values() if rank < len(texts)]
        if len(chosen) >= size:
            break
    return chosen[:size]


async def observe(texts: list[str], triage: TriageClient, embedder: EmbeddingClient) -> Observed:
    """Predictions and embeddings of `texts` from the served model."""
    predictions = []
    for i in range(0, len(texts), BATCH):
        predictions += await triage.classify(texts[i : i + BATCH])
    return Observed(
        texts=texts,
        intents=[p.intent for p in predictions],
        confidences=np.array([p.confidence for p in predictions], dtype=np.float32),
        embeddings=await embedder.embed(texts),
        model_version=predictions[0].model_version if predictions else None,
    )


async def load_reference(
    path: Path, size: int, cache_dir: Path, triage: TriageClient, embedder: EmbeddingClient
) -> Observed:
    """The reference sample as the served model sees it, from the cache when still valid."""
    texts = sample_texts(path, size)
    if len(texts) < PROBE:
        raise ValueError(f"{path} holds {len(texts)} texts; the reference needs more")
    probe = await triage.classify(texts[:PROBE])
    digest = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]
    cache = cache_dir / f"{_safe(probe[0].model_version)}-{digest}.npz"
    cached = _read(cache, texts)
    confidences = np.array([p.confidence for p in probe], dtype=np.float32)
    if cached is not None and np.allclose(cached.probe, confidences, atol=1e-3):
        return cached
    log.info("computing the drift reference (%d texts) for model %s", len(texts), cache.stem)
    observed = replace(await observe(texts, triage, embedder), probe=confidences)
    _write(cache, observed)
    return observed


def _safe(version: str | None) -> str:
    return "".join(c for c in (version or "unknown") if c.isalnum())[:20] or "unknown"


def _read(cache: Path, texts: list[str]) -> Observed | None:
    if not cache.is_file():
        return None
    with np.load(cache, allow_pickle=False) as data:
        if "probe" not in data or data["texts"].tolist() != texts:
            return None
        return Observed(
            texts=texts,
            intents=data["intents"].tolist(),
            confidences=data["confidences"],
            embeddings=data["embeddings"],
            model_version=str(data["model_version"]) or None,
            probe=data["probe"],
        )


def _write(cache: Path, observed: Observed) -> None:
    """Written beside, then renamed: a reader never meets half a file."""
    cache.parent.mkdir(parents=True, exist_ok=True)
    partial = cache.with_suffix(".partial.npz")
    np.savez(
        partial,
        texts=np.array(observed.texts),
        intents=np.array(observed.intents),
        confidences=observed.confidences,
        embeddings=observed.embeddings,
        model_version=np.array(observed.model_version or ""),
        probe=observed.probe,
    )
    partial.replace(cache)
