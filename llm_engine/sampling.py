"""Per-sequence sampling: penalties, temperature, nucleus (top-p), seeded generators."""

from collections import Counter
from dataclasses import dataclass

import numpy as np

# Nucleus sampling looks at this many best tokens at most: the mass beyond is negligible and
# a full sort of a 49k vocabulary per step per sequence would cost more than the decode.
CANDIDATES = 1024


@dataclass(frozen=True)
class SamplingParams:
    max_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 1.0
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    ignore_eos: bool = False  # generate exactly max_tokens (benchmarks, tests)

    def validate(self) -> None:
        if self.max_tokens < 1:
            raise ValueError("max_tokens must be at least 1")
        if not 0.0 <= self.temperature <= 2.0:
            raise ValueError("temperature must be between 0 and 2")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError("top_p must be above 0 and at most 1")
        for name in ("frequency_penalty", "presence_penalty"):
            if not -2.0 <= getattr(self, name) <= 2.0:
                raise ValueError(f"{name} must be between -2 and 2")
        if any(not s for s in self.stop):
            raise ValueError("stop words must not be empty")


class Sampler:
    """Chooses the next token of one sequence; keeps its own random generator and token counts."""

    def __init__(self, params: SamplingParams):
        self.params = params
        self.rng = np.random.default_rng(params.seed)
        self.counts: Counter[int] = Counter()

    def __call__(self, logits: np.ndarray) -> int:
        p = self.params
        if self.counts and (p.frequency_penalty or p.presence_penalty):
            logits = logits.copy()
            ids = np.fromiter(self.counts.keys(), dtype=np.int64)
            hits = np.fromiter(self.counts.values(), dtype=np.float32)
            logits[ids] -= p.frequency_penalty * hits + p.presence_penalty
        token = int(np.argmax(logits)) if p.temperature == 0.0 else self._sample(logits)
        self.counts[token] += 1
        return token

    def _sample(self, logits: np.ndarray) -> int:
        scaled = logits.astype(np.float64) / self.params.temperature
        k = min(CANDIDATES, scaled.shape[0])
        top = np.argpartition(scaled, -k)[-k:]
        top = top[np.argsort(scaled[top])[::-1]]
        probs = np.exp(scaled[top] - scaled[top[0]])
        probs /= probs.sum()
        if self.params.top_p < 1.0:
            keep = int(np.searchsorted(np.cumsum(probs), self.params.top_p) + 1)
            probs = probs[:keep] / probs[:keep].sum()
            top = top[:keep]
        return int(top[self.rng.choice(len(top), p=probs)])
