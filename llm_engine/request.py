"""What the scheduler works with: a request, how it ends, and its sequence while it lives."""

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from llm_engine.sampling import Sampler, SamplingParams
from llm_engine.text import TextStream


class FinishReason(enum.StrEnum):
    STOP = "stop"
    LENGTH = "length"
    CANCELLED = "cancelled"
    ERROR = "error"


class Priority(enum.IntEnum):
    """Lower runs first: a person waiting on a chat reply before a draft nobody watches."""

    INTERACTIVE = 0
    BACKGROUND = 1

    @classmethod
    def parse(cls, name: str) -> "Priority":
        try:
            return cls[name.upper()]
        except KeyError:
            raise ValueError("priority must be interactive or background") from None


@dataclass(frozen=True)
class Finish:
    reason: FinishReason
    prompt_tokens: int
    generated_tokens: int
    error: str | None = None
    code: str | None = None  # for an error the request itself caused: a stable code


class ContextLengthExceeded(ValueError):
    """The prompt plus max_tokens does not fit one sequence's context."""

    code = "context_length_exceeded"


@dataclass
class Request:
    """One generation; the callbacks run on the scheduler's thread and must be quick."""

    prompt: str
    params: SamplingParams
    on_text: Callable[[str], None]
    on_finish: Callable[[Finish], None]
    is_cancelled: Callable[[], bool] = lambda: False
    priority: Priority = Priority.INTERACTIVE
    arrived: float = field(default_factory=time.perf_counter)


@dataclass(eq=False)  # compared by identity: list.remove and `in` must not compare fields
class Sequence:
    """One request from arrival to its end: waiting, running, and waiting again if preempted."""

    request: Request
    tokens: list[int]  # the prompt, then each sampled token; the cache holds `position` of them
    prompt_length: int
    rank: tuple[int, int]  # (priority, arrival number): the waiting queue's order
    sampler: Sampler
    text: TextStream
    slot: int | None = None
    position: int = 0
    generated: int = 0
    cells: int = 0  # cache cells reserved for it while it runs
    admitted: bool = False
    last_token_at: float | None = None

    @property
    def decoding(self) -> bool:
        """One sampled token to feed, as opposed to a prompt (or a preempted text) to prefill."""
        return self.generated > 0 and self.position == len(self.tokens) - 1

    @property
    def max_cells(self) -> int:
        return self.prompt_length + self.request.params.max_tokens
