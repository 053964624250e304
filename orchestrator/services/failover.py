"""Chat and drafts fail over from the primary LLM to a fallback, behind a circuit breaker.

Two Triton models with the same tensors (ORCHESTRATOR_LLM_PRIMARY, ORCHESTRATOR_LLM_FALLBACK;
`llm` and `llm_fallback` by default) answer the same requests. A request goes to the primary
unless its breaker is open; when the primary fails before its first token (unavailable, no
first token within `wait_s`, overloaded), the same request goes to the fallback with what is
left of its timeout, and the answer names the model that wrote it (`Answer.model`,
`Generation.model`). After the first token nothing can be taken back: a failure mid-answer
reaches the caller as it would without failover. A request the model refuses as the
caller's fault (LLMRejected) is not failed over and does not count against the primary.

The breaker, one per process (each orchestrator replica and worker decides alone):

    closed --`failures` failures in a row--> open --`cooldown_s`--> half-open
    half-open: one request probes the primary (Triton's readiness, then the request itself):
               its first token closes the breaker, a failure opens it for another cooldown.
    "in a row": a failure before the first token or mid-answer counts; a whole answer resets.

While the breaker is open the fallback goes first, and the primary is still tried when the
fallback fails too (before its first token): with failover configured, no request is answered
worse than the primary alone would answer it. When both fail, the primary's error is raised.
"""

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from enum import Enum, IntEnum

from orchestrator.metrics import Metrics
from orchestrator.settings import OrchestratorSettings
from orchestrator.triton.llm_client import (
    Generation,
    LLMClient,
    LLMOverloaded,
    LLMRejected,
    LLMTimeout,
    LLMUnavailable,
    final_generation,
)

log = logging.getLogger(__name__)


class BreakerState(IntEnum):
    """The values of the `support_llm_breaker_state` gauge."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


class Route(Enum):
    PRIMARY = "primary"  # closed: the primary first
    PROBE = "probe"  # half-open, and this request is the one probe
    FALLBACK = "fallback"  # open (or a probe is under way): the fallback first


class CircuitBreaker:
    """Counts the primary's failures in a row; the clock is injectable for tests."""

    def __init__(
        self,
        failures: int,
        cooldown_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[BreakerState], None] | None = None,
    ):
        self.threshold, self.cooldown_s, self.clock = failures, cooldown_s, clock
        self.on_change = on_change
        self._state = BreakerState.CLOSED
        self._failures = 0  # in a row
        self._opened_at = 0.0
        self._probing = False
        if on_change is not None:
            on_change(self._state)

    @property
    def state(self) -> BreakerState:
        if self._state is BreakerState.OPEN and self.clock() - self._opened_at >= self.cooldown_s:
            self._set(BreakerState.HALF_OPEN)
        return self._state

    def route(self) -> Route:
        """Where the next request goes first; a PROBE must end in success, failure or release."""
        state = self.state
        if state is BreakerState.CLOSED:
            return Route.PRIMARY
        if state is BreakerState.HALF_OPEN and not self._probing:
            self._probing = True
            return Route.PROBE
        return Route.FALLBACK

    def success(self) -> None:
        """The primary answered: a probe's first token, or any whole answer."""
        self._failures, self._probing = 0, False
        self._set(BreakerState.CLOSED)

    def failure(self) -> None:
        """The primary failed: an error, a timeout or overload."""
        self._failures += 1
        self._probing = False
        if self._state is not BreakerState.CLOSED or self._failures >= self.threshold:
            self._opened_at = self.clock()  # a failure while open waits a whole cooldown again
            self._set(BreakerState.OPEN)

    def release(self) -> None:
        """The probe ended without a verdict (the caller's error, or the caller went away)."""
        self._probing = False

    def _set(self, state: BreakerState) -> None:
        if state is self._state:
            return
        log.warning(
            "LLM circuit breaker %s -> %s (%d failures in a row)",
            self._state.name.lower(), state.name.lower(), self._failures,
        )  # fmt: skip
        self._state = state
        if self.on_change is not None:
            self.on_change(state)


def failure_reason(error: LLMUnavailable) -> str:
    """The `reason` label of a failover caused by `error`."""
    if isinstance(error, LLMOverloaded):
        return "overloaded"
    if isinstance(error, LLMTimeout):
        return "timeout"
    return "unavailable"


class Answer:
    """One request's stream: what LLMClient.stream yields (text pieces, then a Generation),
    and `model`, the model writing it, set before its first item comes out."""

    def __init__(self) -> None:
        self.model: str | None = None
        self._items: AsyncIterator[str | Generation] | None = None

    def __aiter__(self) -> "Answer":
        return self

    async def __anext__(self) -> str | Generation:
        return await self._items.__anext__()

    async def aclose(self) -> None:
        await self._items.aclose()


class FailoverLLM:
    """LLMClient's `stream(messages, **params)` over a primary and an optional fallback."""

    def __init__(
        self,
        primary: LLMClient,
        fallback: LLMClient | None = None,
        *,
        breaker: CircuitBreaker | None = None,
        metrics: Metrics | None = None,
        wait_s: float = 15.0,
        ready_timeout_s: float = 2.0,
    ):
        if fallback is not None and breaker is None:
            raise ValueError("a fallback needs a breaker")
        self.primary, self.fallback, self.breaker = primary, fallback, breaker
        self.metrics, self.wait_s, self.ready_timeout_s = metrics, wait_s, ready_timeout_s

    def stream(self, messages: list[dict], *, timeout_s: float = 120.0, **params) -> Answer:
        """Text pieces, then a Generation naming its model; `timeout_s` bounds the whole."""
        answer = Answer()
        answer._items = self._answer(answer, messages, timeout_s, params)
        return answer

    async def generate(self, messages: list[dict], **params) -> Generation:
        return await final_generation(self.stream(messages, **params))

    async def close(self) -> None:
        await self.primary.close()
        if self.fallback is not None:
            await self.fallback.close()

    async def _order(self) -> tuple[list[LLMClient], Route, str]:
        """The models to try in turn, the breaker's route, and why the fallback would serve."""
        if self.fallback is None:
            return [self.primary], Route.PRIMARY, ""
        route = self.breaker.route()
        if route is Route.PRIMARY:
            return [self.primary, self.fallback], route, ""
        if route is Route.FALLBACK:
            return [self.fallback, self.primary], route, "breaker_open"
        try:  # the probe: a primary that Triton does not call ready is not sent the request
            ready = await self.primary.ready(self.ready_timeout_s)
        except BaseException:
            self.breaker.release()
            raise
        if ready:
            return [self.primary, self.fallback], route, ""
        self.breaker.failure()  # another cooldown
        return [self.fallback], route, "unavailable"

    async def _answer(self, answer: Answer, messages, timeout_s: float, params: dict):
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        order, route, reason = await self._order()
        errors: dict[str, LLMUnavailable] = {}
        for index, client in enumerate(order):
            is_primary, last = client is self.primary, index == len(order) - 1
            remaining = deadline - loop.time()
            if index and remaining <= 0:
                break  # the request's own time is spent: nothing left to give another model
            if client is self.fallback:
                self._count_failover(reason)
            items = client.stream(messages, timeout_s=remaining, **params)
            try:
                first = await self._first(items, None if last else min(self.wait_s, remaining))
            except LLMRejected as error:  # the caller's fault for this model, not a failure
                if is_primary:
                    self._release(route)
                    raise
                errors[client.model] = error
                continue
            except LLMUnavailable as error:
                errors[client.model] = error
                if is_primary:
                    self._failure()
                    reason = failure_reason(error)
                log.warning("LLM %r failed before its first token: %s", client.model, error)
                continue
            except BaseException:  # cancelled: the caller went away
                if is_primary:
                    self._release(route)
                await items.aclose()
                raise
            if is_primary:
                self._success(final=isinstance(first, Generation))
            answer.model = client.model
            try:
                yield first
                if not isinstance(first, Generation):
                    async for item in items:
                        if is_primary and isinstance(item, Generation):
                            self._success(final=True)
                        yield item
            except LLMRejected:
                raise
            except LLMUnavailable:  # mid-answer: nothing to take back, but it counts
                if is_primary:
                    self._failure()
                raise
            finally:  # also when the caller closes the stream early: Triton cancels it
                await items.aclose()
            return
        fallback_error = errors.get(self.fallback.model) if self.fallback else None
        primary_error = errors.get(self.primary.model)
        if primary_error is not None:
            raise primary_error from fallback_error
        raise fallback_error or LLMTimeout(f"no answer within {timeout_s} s")

    async def _first(self, items: AsyncIterator, wait_s: float | None):
        if wait_s is None:
            return await anext(items)
        try:
            return await asyncio.wait_for(anext(items), wait_s)
        except TimeoutError:
            await items.aclose()
            raise LLMTimeout(f"no first token within {wait_s:g} s") from None

    def _success(self, final: bool) -> None:
        """The primary's first token closes its breaker (the probe's verdict); its whole
        answer also ends a run of failures (a model that fails mid-answer opens it too)."""
        if self.breaker is not None and (final or self.breaker.state is not BreakerState.CLOSED):
            self.breaker.success()

    def _failure(self) -> None:
        if self.breaker is not None:
            self.breaker.failure()

    def _release(self, route: Route) -> None:
        if route is Route.PROBE:
            self.breaker.release()

    def _count_failover(self, reason: str) -> None:
        if self.metrics is not None:
            self.metrics.llm_failovers.labels(self.primary.model, self.fallback.model, reason).inc()


def make_llm(settings: OrchestratorSettings, grpc_url: str, metrics: Metrics) -> FailoverLLM:
    """The primary and, when configured, the fallback behind one breaker."""
    primary = LLMClient(grpc_url, settings.llm_primary)
    if not settings.llm_fallback:
        return FailoverLLM(primary)
    gauge = metrics.llm_breaker_state.labels(primary.model)
    return FailoverLLM(
        primary,
        LLMClient(grpc_url, settings.llm_fallback),
        breaker=CircuitBreaker(
            settings.llm_breaker_failures,
            settings.llm_breaker_cooldown_s,
            on_change=lambda state: gauge.set(state),
        ),
        metrics=metrics,
        wait_s=settings.llm_failover_wait_s,
        ready_timeout_s=settings.ready_timeout_s,
    )
