"""A deterministic engine for scheduler tests: no model, logits that spell a known reply.

Tokens are UTF-8 bytes (0-255) and 256 is end-of-sequence. After a sequence's prompt the
greedy choice spells `reply` byte by byte and then ends; the logits also give every lower-case
letter some weight, so sampling with a temperature can wander and a seed matters. Like a real
model's, the logits depend only on the tokens in the sequence's cache (how much of `reply`
they end with), so a sequence recomputed after preemption continues where it was. Every
forward pass is recorded, so tests can see what ran together in one step, and the cells all
sequences hold may never exceed `kv_capacity`.
"""

import threading
import time

import numpy as np

from llm_engine.engine import StepItem

EOS = 256
VOCAB = 257
LETTERS = [ord(c) for c in "abcdefghijklmnopqrstuvwxyz"]


class FakeEngine:
    name = "fake"

    def __init__(
        self,
        reply: str = "Hello, world.",
        *,
        max_slots: int = 4,
        context_length: int = 256,
        kv_capacity: int | None = None,
        step_delay_s: float = 0.0,
    ):
        self.reply = reply.encode()
        self.max_slots = max_slots
        self.context_length = context_length
        self.kv_capacity = kv_capacity or context_length * max_slots
        self.eos_token_ids = frozenset({EOS})
        self.step_delay_s = step_delay_s
        self.fail_next: str | None = None  # the next forward raises with this message
        self.steps: list[list[StepItem]] = []
        self.shared: list[tuple[int, int, int]] = []
        self._cache: dict[int, list[int]] = {}
        self._lock = threading.Lock()

    def tokenize(self, text: str) -> list[int]:
        return list(text.encode())

    def token_bytes(self, token: int) -> bytes:
        return b"" if token == EOS else bytes([token])

    def render_chat(self, messages: list[dict]) -> str:
        return "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant: "

    def forward(self, items: list[StepItem]) -> dict[int, np.ndarray]:
        time.sleep(self.step_delay_s)
        with self._lock:
            self.steps.append(list(items))
            if self.fail_next is not None:
                message, self.fail_next = self.fail_next, None
                raise RuntimeError(message)
            logits = {}
            for item in items:
                cache = self._cache.setdefault(item.slot, [])
                assert item.start == len(cache), "a step must continue where the cache ends"
                cache.extend(item.tokens)
                if item.want_logits:
                    logits[item.slot] = self._logits(self._reply_so_far(cache))
            cells = sum(len(c) for c in self._cache.values())
            if cells > self.kv_capacity:
                raise RuntimeError(f"{cells} cache cells in use, beyond {self.kv_capacity}")
            return logits

    def share_prefix(self, source: int, target: int, length: int) -> None:
        with self._lock:
            assert not self._cache.get(target), "the target must be empty"
            assert len(self._cache.get(source, [])) >= length, "only cached cells can be shared"
            self.shared.append((source, target, length))
            self._cache[target] = list(self._cache[source][:length])

    def release(self, slot: int) -> None:
        with self._lock:
            self._cache.pop(slot, None)

    def computed_tokens(self) -> int:
        """Tokens run through forward passes so far (what a prefix cache saves)."""
        return sum(len(item.tokens) for step in self.steps for item in step)

    def _reply_so_far(self, cache: list[int]) -> int:
        """How many bytes of the reply the cache ends with (the longest such run)."""
        for n in range(min(len(cache), len(self.reply)), 0, -1):
            if cache[-n:] == list(self.reply[:n]):
                return n
        return 0

    def _logits(self, generated: int) -> np.ndarray:
        logits = np.full(VOCAB, -10.0, dtype=np.float32)
        logits[LETTERS] = 3.0
        logits[self.reply[generated] if generated < len(self.reply) else EOS] = 5.0
        return logits
