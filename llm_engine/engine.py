"""The small interface both engines implement."""

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class StepItem:
    """Tokens of one sequence to run in this step, starting at position `start`."""

    slot: int
    tokens: list[int]
    start: int
    want_logits: bool


class Engine(Protocol):
    name: str
    context_length: int  # longest prompt plus reply one sequence may reach
    kv_capacity: int  # cache cells shared by all running sequences and cached prefixes
    max_slots: int  # sequence ids: the scheduler's running slots, then its cached prefixes
    eos_token_ids: frozenset[int]

    def tokenize(self, text: str) -> list[int]:
        """Token ids of a fully rendered prompt (special tokens parsed, BOS as the model wants)."""

    def token_bytes(self, token: int) -> bytes:
        """The raw bytes a token stands for; pieces of a UTF-8 character may span tokens."""

    def render_chat(self, messages: list[dict]) -> str:
        """The model's own chat template applied to OpenAI-style messages, ready to generate."""

    def forward(self, items: list[StepItem]) -> dict[int, np.ndarray]:
        """Run every item in one pass; return the last-position logits of each item wanting them."""

    def share_prefix(self, source: int, target: int, length: int) -> None:
        """Give the empty `target` slot the cache of `source`'s first `length` positions.

        Both ways between running slots and cached prefixes: a new request takes a prefix
        over, and a finished one leaves its cells to a prefix slot before it is released.
        """

    def release(self, slot: int) -> None:
        """Forget everything cached for `slot` so that a new sequence can use it."""
