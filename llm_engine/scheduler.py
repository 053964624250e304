"""Continuous batching: every running sequence advances by one step of a shared forward pass.

New requests join at step boundaries, without waiting for others to finish. A long prompt is
prefilled in chunks under a per-step token budget, so the streams already running keep getting
a token every step. Each sequence samples with its own settings, seed and stop words. At most
`max_active` sequences run; the rest wait in arrival order and their queue time is measured.
"""

import collections
import enum
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from llm_engine.engine import Engine, StepItem
from llm_engine.sampling import Sampler, SamplingParams
from llm_engine.text import TextStream

# Shorter common prefixes are not worth a cache operation (or a step's wait).
MIN_SHARED_PREFIX = 8


def _shared(a: "_Sequence", b: "_Sequence") -> int:
    """Length of the common token prefix of two prompts."""
    limit = min(len(a.prompt), len(b.prompt))
    return next((i for i in range(limit) if a.prompt[i] != b.prompt[i]), limit)


class FinishReason(enum.StrEnum):
    STOP = "stop"
    LENGTH = "length"
    CANCELLED = "cancelled"
    ERROR = "error"


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
    arrived: float = field(default_factory=time.perf_counter)


class Observer:
    """Timing and state hooks for metrics; the default does nothing."""

    def queued(self, seconds: float) -> None: ...
    def first_token(self, seconds: float) -> None: ...
    def token_gap(self, seconds: float) -> None: ...
    def finished(self, finish: Finish, seconds: float) -> None: ...
    def state(self, running: int, waiting: int) -> None: ...
    def prefix_reused(self, tokens: int) -> None: ...


@dataclass
class _Sequence:
    request: Request
    prompt: list[int]
    slot: int
    sampler: Sampler
    text: TextStream
    position: int = 0  # tokens already in the engine's cache
    next_token: int | None = None
    generated: int = 0
    last_token_at: float | None = None
    cells: int = 0

    @property
    def prefilling(self) -> bool:
        return self.position < len(self.prompt)


class Scheduler:
    def __init__(
        self,
        engine: Engine,
        *,
        max_active: int = 16,
        step_token_budget: int = 256,
        prefill_chunk: int = 128,
        observer: Observer | None = None,
        going_away: Callable[[], bool] | None = None,
        going_away_interval_s: float = 0.5,
    ):
        self.engine = engine
        self.max_active = min(max_active, engine.max_slots)
        self.step_token_budget = max(step_token_budget, self.max_active + 1)
        self.prefill_chunk = prefill_chunk
        self.observer = observer or Observer()
        self._waiting: collections.deque[tuple[Request, list[int]]] = collections.deque()
        self._active: list[_Sequence] = []
        self._free_slots = list(range(self.max_active))
        self._reserved = 0  # cache cells promised to running sequences
        self._wake = threading.Condition()
        self._stopping = False
        self._closed_reason = "the model is unloading"
        # Triton unloads a decoupled model only after its streams end, so the model asks the
        # server whether it is still wanted and ends its streams itself when it is not.
        self._going_away = going_away
        self._going_away_interval_s = going_away_interval_s
        self._next_going_away_check = 0.0
        self._thread = threading.Thread(target=self._run, name="llm-scheduler", daemon=True)

    # ---- called from Triton's threads -------------------------------------------------------
    def start(self) -> "Scheduler":
        self._thread.start()
        return self

    def submit(self, request: Request) -> None:
        """Queue a request; one that cannot fit or has bad settings ends at once."""
        try:
            request.params.validate()
            tokens = self.engine.tokenize(request.prompt)
            if not tokens:
                raise ValueError("the prompt is empty")
            if len(tokens) + request.params.max_tokens > self.engine.context_length:
                raise ContextLengthExceeded(
                    f"the prompt has {len(tokens)} tokens and max_tokens is "
                    f"{request.params.max_tokens}; the context holds "
                    f"{self.engine.context_length} including the reply"
                )
        except ValueError as error:
            code = getattr(error, "code", None)
            request.on_finish(Finish(FinishReason.ERROR, 0, 0, str(error), code))
            return
        with self._wake:
            if self._stopping:
                request.on_finish(Finish(FinishReason.ERROR, len(tokens), 0, self._closed_reason))
                return
            self._waiting.append((request, tokens))
            self._wake.notify()

    def stop(self, reason: str = "the model is unloading", timeout_s: float = 30.0) -> None:
        """End every running and waiting request with an error, then stop the thread."""
        with self._wake:
            self._stopping = True
            self._closed_reason = reason
            self._wake.notify()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    @property
    def counts(self) -> tuple[int, int]:
        return len(self._active), len(self._waiting)

    # ---- the scheduler's own thread ---------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._stopping and not self._active and not self._waiting:
                    self._wake.wait(timeout=1.0)
                if self._stopping:
                    break
            try:
                self._iterate()
                self.observer.state(len(self._active), len(self._waiting))
            except Exception as error:  # never let the thread die: streams would hang
                self._end_all(f"internal error in the scheduler: {error!r}")
        self._end_all(self._closed_reason)

    def _iterate(self) -> None:
        self._drop_cancelled()
        self._end_all_if_going_away()
        self._admit()
        if self._active:
            self._step()

    def _end_all_if_going_away(self) -> None:
        if self._going_away is None or time.monotonic() < self._next_going_away_check:
            return
        self._next_going_away_check = time.monotonic() + self._going_away_interval_s
        try:
            leaving = self._going_away()
        except Exception:  # a failed check is not a reason to end anyone's stream
            return
        if leaving:
            self._end_all(self._closed_reason)

    def _admit(self) -> None:
        """Start waiting requests, oldest first, while a slot and enough cache cells are free."""
        now = time.perf_counter()
        while self._free_slots:
            with self._wake:
                if not self._waiting:
                    return
                request, tokens = self._waiting[0]
                cells = self._cells_needed(request, tokens)
                if self._active and self._reserved + cells > self.engine.kv_capacity:
                    return  # the oldest waits for cells rather than being overtaken
                self._waiting.popleft()
            self.observer.queued(now - request.arrived)
            self._reserved += cells
            stream = TextStream(request.params.stop)
            sequence = _Sequence(
                request, tokens, self._free_slots.pop(0), Sampler(request.params), stream
            )
            sequence.cells = cells
            self._active.append(sequence)

    def _cells_needed(self, request: Request, tokens: list[int]) -> int:
        return min(len(tokens) + request.params.max_tokens, self.engine.context_length)

    def _drop_cancelled(self) -> None:
        for sequence in [s for s in self._active if s.request.is_cancelled()]:
            self._finish(sequence, FinishReason.CANCELLED)
        with self._wake:
            waiting = list(self._waiting)
            self._waiting.clear()
        keep = collections.deque()
        for request, tokens in waiting:
            if request.is_cancelled():
                self._report(request, Finish(FinishReason.CANCELLED, len(tokens), 0))
            else:
                keep.append((request, tokens))
        with self._wake:
            self._waiting.extendleft(reversed(keep))

    def _plan_step(self) -> list[tuple[_Sequence, StepItem]]:
        """Every decoding sequence gets its token; prefill chunks share the rest of the budget.

        A prompt that starts like one already in the cache (the same system prompt, say)
        takes those cells over instead of computing them again; one that starts like a prompt
        being prefilled in this very step waits a step to do the same.
        """
        plan, budget = [], self.step_token_budget
        for s in self._active:
            if not s.prefilling and s.next_token is not None:
                plan.append((s, StepItem(s.slot, [s.next_token], s.position, True)))
                budget -= 1
        starting: list[_Sequence] = []
        for s in self._active:
            if s.prefilling and s.position == 0 and budget > 0:
                self._reuse_cached_prefix(s)
                if s.position == 0 and any(_shared(s, o) >= MIN_SHARED_PREFIX for o in starting):
                    continue
                starting.append(s)
            if s.prefilling and budget > 0:
                n = min(self.prefill_chunk, budget, len(s.prompt) - s.position)
                last = s.position + n == len(s.prompt)
                plan.append(
                    (s, StepItem(s.slot, s.prompt[s.position : s.position + n], s.position, last))
                )
                budget -= n
        return plan

    def _reuse_cached_prefix(self, sequence: _Sequence) -> None:
        best, donor = 0, None
        for other in self._active:
            if other is not sequence:
                cached = min(other.position, len(other.prompt))
                shared = min(_shared(sequence, other), cached, len(sequence.prompt) - 1)
                if shared > best:
                    best, donor = shared, other
        if donor is not None and best >= MIN_SHARED_PREFIX:
            self.engine.share_prefix(donor.slot, sequence.slot, best)
            sequence.position = best
            self.observer.prefix_reused(best)

    def _step(self) -> None:
        plan = self._plan_step()
        if not plan:
            return
        try:
            logits = self.engine.forward([item for _, item in plan])
        except Exception as error:  # the engine failed: end this step's sequences, keep serving
            for sequence, _ in plan:
                self._finish(sequence, FinishReason.ERROR, f"generation failed: {error}")
            return
        for sequence, item in plan:
            sequence.position += len(item.tokens)
            if item.want_logits:
                self._accept(sequence, self._sample(sequence, logits[item.slot]))

    def _sample(self, sequence: _Sequence, logits) -> int:
        token = sequence.sampler(logits)
        now = time.perf_counter()
        if sequence.last_token_at is None:
            self.observer.first_token(now - sequence.request.arrived)
        else:
            self.observer.token_gap(now - sequence.last_token_at)
        sequence.last_token_at = now
        return token

    def _accept(self, sequence: _Sequence, token: int) -> None:
        if token in self.engine.eos_token_ids and not sequence.request.params.ignore_eos:
            self._finish(sequence, FinishReason.STOP)
            return
        sequence.generated += 1
        delta, hit_stop = sequence.text.push(self.engine.token_bytes(token))
        if delta:
            sequence.request.on_text(delta)
        if hit_stop:
            self._finish(sequence, FinishReason.STOP, flush=False)
        elif self._out_of_room(sequence):
            self._finish(sequence, FinishReason.LENGTH)
        else:
            sequence.next_token = token

    def _out_of_room(self, sequence: _Sequence) -> bool:
        return (
            sequence.generated >= sequence.request.params.max_tokens
            or sequence.position + 1 >= self.engine.context_length
        )

    def _finish(
        self,
        sequence: _Sequence,
        reason: FinishReason,
        error: str | None = None,
        flush: bool = True,
    ) -> None:
        if flush and reason in (FinishReason.STOP, FinishReason.LENGTH):
            rest = sequence.text.flush()
            if rest:
                sequence.request.on_text(rest)
        self._active.remove(sequence)
        self._reserved -= sequence.cells
        try:
            self.engine.release(sequence.slot)
        finally:
            self._free_slots.append(sequence.slot)
        finish = Finish(reason, len(sequence.prompt), sequence.generated, error)
        self._report(sequence.request, finish)

    def _report(self, request: Request, finish: Finish) -> None:
        self.observer.finished(finish, time.perf_counter() - request.arrived)
        request.on_finish(finish)

    def _end_all(self, reason: str) -> None:
        for sequence in list(self._active):
            self._finish(sequence, FinishReason.ERROR, reason)
        with self._wake:
            waiting = list(self._waiting)
            self._waiting.clear()
        for request, tokens in waiting:
            self._report(request, Finish(FinishReason.ERROR, len(tokens), 0, reason))
