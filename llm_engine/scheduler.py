"""Continuous batching: every running sequence advances by one step of a shared forward pass.

New requests join at step boundaries, without waiting for others to finish. A long prompt is
prefilled in chunks under a per-step token budget, so the streams already running keep getting
a token every step. Each sequence samples with its own settings, seed and stop words.

At most `max_active` sequences run; the rest wait, interactive before background and then in
arrival order, in a queue that is bounded in length and in time (llm_engine/waiting.py): a
request that finds it full, or waits past its deadline, ends at once with a retryable error.

Cache cells are reserved as they are needed, not up front: a sequence starts with its prompt
plus a small block and grows block by block as it generates, so a request with a large
max_tokens holds no cells it has not used yet. When a step needs cells and none are free, the
cached prefixes of finished requests (llm_engine/prefix_cache.py) are evicted first; then the
newest running sequence of the lowest priority is preempted: its cells are freed and it waits
again with its original rank, to be recomputed later from its prompt plus the tokens it has
generated. Its sampler and text stream are kept, so nothing is sent twice and nothing is lost.
"""

import collections
import itertools
import threading
import time
from collections.abc import Callable

from llm_engine.engine import Engine, StepItem
from llm_engine.prefix_cache import MIN_SHARED_PREFIX, PrefixCache, shared_length
from llm_engine.request import (
    ContextLengthExceeded,
    Finish,
    FinishReason,
    Priority,
    Request,
    Sequence,
)
from llm_engine.sampling import Sampler
from llm_engine.text import TextStream
from llm_engine.waiting import WaitingQueue

__all__ = [
    "ContextLengthExceeded",
    "Finish",
    "FinishReason",
    "Observer",
    "Priority",
    "Request",
    "Scheduler",
]

# A running sequence's cache reservation grows by this many cells at a time.
GROWTH_BLOCK = 16


class Observer:
    """Timing and state hooks for metrics, called on the scheduler's thread; the default does
    nothing. A request refused before it ran is counted by `rejected`, not `finished`."""

    def queued(self, seconds: float) -> None: ...
    def first_token(self, seconds: float) -> None: ...
    def token_gap(self, seconds: float) -> None: ...
    def finished(self, finish: Finish, seconds: float) -> None: ...
    def state(self, running: int, waiting: int) -> None: ...
    def prefix_reused(self, tokens: int) -> None: ...
    def preempted(self) -> None: ...
    def rejected(self, code: str) -> None: ...


class Scheduler:
    def __init__(
        self,
        engine: Engine,
        *,
        max_active: int = 16,
        step_token_budget: int = 256,
        prefill_chunk: int = 128,
        prefix_cache_entries: int = 8,
        max_waiting: int = 64,
        queue_timeout_s: float = 30.0,
        cancel_poll_s: float = 0.05,
        observer: Observer | None = None,
        going_away: Callable[[], bool] | None = None,
        going_away_interval_s: float = 0.5,
    ):
        """The engine's sequence ids beyond `max_active` (up to `prefix_cache_entries` of them)
        hold cached prefixes. `is_cancelled` is a round trip to Triton, so it is asked at most
        every `cancel_poll_s`, not every step."""
        self.engine = engine
        self.max_active = min(max_active, engine.max_slots)
        self.step_token_budget = max(step_token_budget, self.max_active + 1)
        self.prefill_chunk = prefill_chunk
        self.context_limit = min(engine.context_length, engine.kv_capacity)
        self.queue_timeout_s = queue_timeout_s
        self.cancel_poll_s = cancel_poll_s
        self.observer = observer or Observer()
        entries = min(prefix_cache_entries, engine.max_slots - self.max_active)
        self._cache = PrefixCache(engine, range(self.max_active, self.max_active + entries))
        self._waiting: WaitingQueue[Sequence] = WaitingQueue(max_waiting)
        self._arrivals = itertools.count()
        self._refused: collections.Counter[str] = collections.Counter()  # for the observer
        self._active: list[Sequence] = []
        self._free_slots = list(range(self.max_active))
        self._reserved = 0  # cache cells reserved by running sequences
        self._next_poll = 0.0
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
        """Queue a request; one that cannot fit, has bad settings or finds the queue full ends
        at once. An interactive request finding it full takes the place of the newest
        background one that has not started."""
        try:
            request.params.validate()
            tokens = self.engine.tokenize(request.prompt)
            if not tokens:
                raise ValueError("the prompt is empty")
            if len(tokens) + request.params.max_tokens > self.context_limit:
                raise ContextLengthExceeded(
                    f"the prompt has {len(tokens)} tokens and max_tokens is "
                    f"{request.params.max_tokens}; the context holds "
                    f"{self.context_limit} including the reply"
                )
        except ValueError as error:
            code = getattr(error, "code", None)
            request.on_finish(Finish(FinishReason.ERROR, 0, 0, str(error), code))
            return
        with self._wake:
            if self._stopping:
                request.on_finish(Finish(FinishReason.ERROR, len(tokens), 0, self._closed_reason))
                return
            refused = self._enqueue(self._sequence(request, tokens))
        if refused is not None:
            message = "the model's waiting queue is full; retry shortly"
            refused.request.on_finish(
                Finish(FinishReason.ERROR, refused.prompt_length, 0, message, "queue_full")
            )

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

    def _sequence(self, request: Request, tokens: list[int]) -> Sequence:
        rank = (int(request.priority), next(self._arrivals))
        sampler, text = Sampler(request.params), TextStream(request.params.stop)
        return Sequence(request, tokens, len(tokens), rank, sampler, text)

    def _enqueue(self, sequence: Sequence) -> Sequence | None:
        """Queue `sequence` unless the queue is full; return the one refused: `sequence`, or
        the newest waiting request of a lower priority that it displaced (one not started)."""
        refused = None
        if self._waiting.full:
            last = self._waiting.last()
            displace = last is not None and last.rank[0] > sequence.rank[0] and not last.generated
            refused = self._waiting.remove([last])[0] if displace else sequence
            self._refused["queue_full"] += 1
        if refused is not sequence:
            self._waiting.push(sequence)
            self._wake.notify()
        return refused

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
                self._report_refusals()
                self.observer.state(len(self._active), len(self._waiting))
            except Exception as error:  # never let the thread die: streams would hang
                self._end_all(f"internal error in the scheduler: {error!r}")
        self._end_all(self._closed_reason)
        self._report_refusals()

    def _iterate(self) -> None:
        if time.monotonic() >= self._next_poll:
            self._next_poll = time.monotonic() + self.cancel_poll_s
            self._drop_cancelled()
            self._expire_waiting()
        self._end_all_if_going_away()
        if not self._reserve_growth():  # after a preemption, admitting would only thrash
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

    def _report_refusals(self) -> None:
        with self._wake:
            refused, self._refused = self._refused, collections.Counter()
        for code, count in refused.items():
            for _ in range(count):
                self.observer.rejected(code)

    # ---- cache cells: reserve, grow, make room ----------------------------------------------
    def _admit(self) -> None:
        """Start waiting sequences, best first, while a slot and enough cache cells are free."""
        while self._free_slots:
            with self._wake:
                sequence = self._waiting.head()
                if sequence is None:
                    return
                self._cache.lookup(sequence.tokens)  # a hit counts as a use: evicted last
                cells = min(len(sequence.tokens) + GROWTH_BLOCK, sequence.max_cells)
                if not self._make_room(cells):
                    return  # the best waits for cells rather than being overtaken
                self._waiting.pop_head()
            self._start(sequence, cells)

    def _start(self, sequence: Sequence, cells: int) -> None:
        if not sequence.admitted:
            sequence.admitted = True
            self.observer.queued(time.perf_counter() - sequence.request.arrived)
        sequence.slot = self._free_slots.pop(0)
        sequence.cells = cells
        self._reserved += cells
        self._active.append(sequence)
        self._reuse_prefix(sequence)

    def _reserve_growth(self) -> bool:
        """Give each running sequence, best rank first, the cells its next step writes; when
        they cannot be found, the worst-ranked (newest, lowest priority) sequence gives way.
        Return whether one did."""
        preempted = False
        for sequence in sorted(self._active, key=lambda s: s.rank):
            while sequence in self._active and len(sequence.tokens) > sequence.cells:
                more = min(GROWTH_BLOCK, sequence.max_cells - sequence.cells)
                if self._make_room(more):
                    sequence.cells += more
                    self._reserved += more
                else:
                    self._preempt(max(self._active, key=lambda s: s.rank))
                    preempted = True
        return preempted

    def _make_room(self, cells: int) -> bool:
        """Evict cached prefixes, oldest first, until `cells` more fit; False if they cannot."""
        if self._reserved + cells > self.engine.kv_capacity:
            return False
        while self._reserved + self._cache.cells + cells > self.engine.kv_capacity:
            self._cache.evict_oldest()
        return True

    def _preempt(self, sequence: Sequence) -> None:
        """Free a running sequence's cells; it waits again, to be recomputed from its tokens."""
        self._release(sequence)
        sequence.position = 0
        self.observer.preempted()
        with self._wake:
            self._waiting.push(sequence)

    def _release(self, sequence: Sequence) -> None:
        self._active.remove(sequence)
        self._reserved -= sequence.cells
        sequence.cells = 0
        try:
            self.engine.release(sequence.slot)
        finally:
            self._free_slots.append(sequence.slot)
            sequence.slot = None

    # ---- cancellation and deadlines ---------------------------------------------------------
    def _drop_cancelled(self) -> None:
        for sequence in [s for s in self._active if s.request.is_cancelled()]:
            self._finish(sequence, FinishReason.CANCELLED)
        with self._wake:
            waiting = self._waiting.items()
        cancelled = [s for s in waiting if s.request.is_cancelled()]
        with self._wake:
            cancelled = self._waiting.remove(cancelled)
        for sequence in cancelled:
            finish = Finish(FinishReason.CANCELLED, sequence.prompt_length, sequence.generated)
            self._report(sequence.request, finish)

    def _expire_waiting(self) -> None:
        """End the requests that waited past the deadline without starting."""
        deadline = time.perf_counter() - self.queue_timeout_s
        with self._wake:
            late = [
                s for s in self._waiting.items() if not s.generated and s.request.arrived < deadline
            ]
            late = self._waiting.remove(late)
        message = f"waited {self.queue_timeout_s:g} s for a free slot; retry shortly"
        for sequence in late:
            self.observer.rejected("queue_timeout")
            sequence.request.on_finish(
                Finish(FinishReason.ERROR, sequence.prompt_length, 0, message, "queue_timeout")
            )

    # ---- one step ---------------------------------------------------------------------------
    def _plan_step(self) -> list[tuple[Sequence, StepItem]]:
        """Every decoding sequence gets its token; prefill chunks share the rest of the budget.

        A prompt that starts like one already in the cache (the same system prompt, say)
        takes those cells over instead of computing them again; one that starts like a prompt
        being prefilled in this very step waits a step to do the same.
        """
        plan, budget = [], self.step_token_budget
        for s in self._active:
            if s.decoding:
                plan.append((s, self._item(s, 1)))
                budget -= 1
        starting: list[Sequence] = []
        for s in self._active:
            if s.decoding or budget <= 0:
                continue
            if s.position == 0:
                self._reuse_prefix(s)
                if s.position == 0 and any(
                    shared_length(s.tokens, o.tokens) >= MIN_SHARED_PREFIX for o in starting
                ):
                    continue
                starting.append(s)
            n = min(self.prefill_chunk, budget, len(s.tokens) - s.position)
            plan.append((s, self._item(s, n)))
            budget -= n
        return plan

    @staticmethod
    def _item(sequence: Sequence, n: int) -> StepItem:
        start, end = sequence.position, sequence.position + n
        return StepItem(
            sequence.slot, sequence.tokens[start:end], start, end == len(sequence.tokens)
        )

    def _reuse_prefix(self, sequence: Sequence) -> None:
        """Take over the longest cached start of its tokens: a cache entry's or a running
        sequence's. The last token is always computed, for its logits."""
        entry, best = self._cache.lookup(sequence.tokens)
        source = entry.seq_id if entry else None
        for other in self._active:
            if other is not sequence:
                shared = min(shared_length(other.tokens, sequence.tokens), other.position)
                if shared > best:
                    best, source = shared, other.slot
        best = min(best, len(sequence.tokens) - 1)
        if source is not None and best >= MIN_SHARED_PREFIX:
            self.engine.share_prefix(source, sequence.slot, best)
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

    def _sample(self, sequence: Sequence, logits) -> int:
        token = sequence.sampler(logits)
        now = time.perf_counter()
        if sequence.last_token_at is None:
            self.observer.first_token(now - sequence.request.arrived)
        else:
            self.observer.token_gap(now - sequence.last_token_at)
        sequence.last_token_at = now
        return token

    def _accept(self, sequence: Sequence, token: int) -> None:
        if token in self.engine.eos_token_ids and not sequence.request.params.ignore_eos:
            self._finish(sequence, FinishReason.STOP)
            return
        sequence.generated += 1
        sequence.tokens.append(token)
        delta, hit_stop = sequence.text.push(self.engine.token_bytes(token))
        if delta:
            sequence.request.on_text(delta)
        if hit_stop:
            self._finish(sequence, FinishReason.STOP, flush=False)
        elif (
            sequence.generated >= sequence.request.params.max_tokens
            or len(sequence.tokens) >= self.engine.context_length
        ):
            self._finish(sequence, FinishReason.LENGTH)

    # ---- endings ----------------------------------------------------------------------------
    def _finish(
        self,
        sequence: Sequence,
        reason: FinishReason,
        error: str | None = None,
        flush: bool = True,
    ) -> None:
        """End a running sequence; unless it failed, its prompt's cells stay as a cached prefix.

        Only the prompt's: a reply's cells would be reused only by a follow-up turn of the same
        chat, while every step of every later sequence pays for them, since llama.cpp attends
        over the cache up to its highest cell in use (measured: 400-token streams at 8.7 ms a
        token with no entries, 9.0-9.8 with two entries holding prompt and reply)."""
        if flush and reason in (FinishReason.STOP, FinishReason.LENGTH):
            rest = sequence.text.flush()
            if rest:
                sequence.request.on_text(rest)
        try:
            if reason is not FinishReason.ERROR:
                kept = min(sequence.position, sequence.prompt_length)
                self._cache.store(sequence.slot, sequence.tokens[:kept])
        finally:
            self._release(sequence)
        finish = Finish(reason, sequence.prompt_length, sequence.generated, error)
        self._report(sequence.request, finish)

    def _report(self, request: Request, finish: Finish) -> None:
        self.observer.finished(finish, time.perf_counter() - request.arrived)
        request.on_finish(finish)

    def _end_all(self, reason: str) -> None:
        for sequence in list(self._active):
            self._finish(sequence, FinishReason.ERROR, reason)
        with self._wake:
            waiting = self._waiting.clear()
        for sequence in waiting:
            finish = Finish(FinishReason.ERROR, sequence.prompt_length, sequence.generated, reason)
            self._report(sequence.request, finish)
