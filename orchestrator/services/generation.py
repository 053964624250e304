"""Timing a streamed generation: time to first token (TTFT) and time per output token (TPOT)."""

import time
from dataclasses import dataclass, field

from orchestrator.metrics import Metrics
from orchestrator.triton.llm_client import Generation


@dataclass
class GenerationTimer:
    started: float = field(default_factory=time.perf_counter)
    first_token: float | None = None
    last_token: float | None = None
    tokens: int = 0  # streamed pieces seen, about one token each

    def token(self) -> None:
        now = time.perf_counter()
        self.tokens += 1
        if self.first_token is None:
            self.first_token = now
        self.last_token = now

    @property
    def ttft_s(self) -> float | None:
        return None if self.first_token is None else self.first_token - self.started

    def tpot_s(self, completion_tokens: int) -> float | None:
        """Mean seconds per token after the first; None when fewer than two tokens came."""
        if self.first_token is None or completion_tokens < 2:
            return None
        return (self.last_token - self.first_token) / (completion_tokens - 1)

    def record(self, metrics: Metrics, source: str, generation: Generation) -> None:
        metrics.observe_generation(
            source,
            self.ttft_s,
            self.tpot_s(generation.completion_tokens),
            generation.prompt_tokens,
            generation.completion_tokens,
        )
