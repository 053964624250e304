"""The circuit breaker and FailoverLLM on a fake clock and fake model clients (no Triton).

The same behaviour through the orchestrator and a real Triton is in
tests/orchestrator/routes/test_failover.py.
"""

import asyncio

import pytest

from orchestrator.metrics import Metrics
from orchestrator.services.failover import (
    BreakerState,
    CircuitBreaker,
    FailoverLLM,
    Route,
    make_llm,
)
from orchestrator.settings import OrchestratorSettings
from orchestrator.triton.llm_client import (
    Generation,
    LLMOverloaded,
    LLMRejected,
    LLMTimeout,
    LLMUnavailable,
)

FAILURES, COOLDOWN_S = 3, 30.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeLLM:
    """LLMClient's interface. `error` fails each request before its first token, `mid_error`
    after it, `hang` never answers; `ready` is what Triton would say."""

    def __init__(self, model: str):
        self.model = model
        self.error: BaseException | None = None
        self.mid_error: BaseException | None = None
        self.hang = False
        self.ready_now = True
        self.requests = self.ready_checks = 0

    def stream(self, messages, *, timeout_s: float = 120.0, **params):
        self.requests += 1
        return self._stream(messages[-1]["content"])

    async def _stream(self, text: str):
        if self.hang:
            await asyncio.sleep(3600)
        if self.error is not None:
            raise self.error
        yield text
        if self.mid_error is not None:
            raise self.mid_error
        yield Generation(text, "stop", 1, 1, self.model)

    async def ready(self, timeout_s: float = 5.0) -> bool:
        self.ready_checks += 1
        return self.ready_now

    async def close(self) -> None:
        pass


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def primary() -> FakeLLM:
    return FakeLLM("llm")


@pytest.fixture
def fallback() -> FakeLLM:
    return FakeLLM("llm_fallback")


@pytest.fixture
def llm(primary, fallback, clock, metrics) -> FailoverLLM:
    gauge = metrics.llm_breaker_state.labels("llm")
    breaker = CircuitBreaker(FAILURES, COOLDOWN_S, clock=clock, on_change=gauge.set)
    return FailoverLLM(primary, fallback, breaker=breaker, metrics=metrics, wait_s=0.2)


def ask(llm, text: str = "hello") -> tuple[str, Generation]:
    """(the model the answer names, its Generation), as chat and drafts read them."""

    async def run():
        answer = llm.stream([{"role": "user", "content": text}], timeout_s=5)
        items = [item async for item in answer]
        assert items[-1].text == text and items[-1].model == answer.model
        return answer.model, items[-1]

    return asyncio.run(run())


def failovers(metrics: Metrics, reason: str) -> float:
    labels = {"primary": "llm", "fallback": "llm_fallback", "reason": reason}
    return metrics.registry.get_sample_value("support_llm_failovers_total", labels) or 0


def gauge(metrics: Metrics) -> float:
    return metrics.registry.get_sample_value("support_llm_breaker_state", {"model": "llm"})


# ---- the breaker alone ---------------------------------------------------------------------


def test_the_breaker_opens_after_failures_in_a_row_and_a_success_resets_the_count(clock):
    breaker = CircuitBreaker(FAILURES, COOLDOWN_S, clock=clock)
    for _ in range(FAILURES - 1):
        breaker.failure()
    breaker.success()  # not in a row any more
    for _ in range(FAILURES - 1):
        breaker.failure()
        assert breaker.state is BreakerState.CLOSED and breaker.route() is Route.PRIMARY
    breaker.failure()
    assert breaker.state is BreakerState.OPEN and breaker.route() is Route.FALLBACK


def test_after_the_cooldown_one_probe_at_a_time_and_its_verdict_decides(clock):
    breaker = CircuitBreaker(1, COOLDOWN_S, clock=clock)
    breaker.failure()
    clock.advance(COOLDOWN_S - 0.1)
    assert breaker.route() is Route.FALLBACK
    clock.advance(0.1)
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.route() is Route.PROBE
    assert breaker.route() is Route.FALLBACK  # the probe is under way
    breaker.release()  # it ended with no verdict (the caller's error): another may probe
    assert breaker.route() is Route.PROBE
    breaker.failure()  # the probe failed: open for a whole cooldown again
    assert breaker.state is BreakerState.OPEN
    clock.advance(COOLDOWN_S - 0.1)
    assert breaker.route() is Route.FALLBACK
    clock.advance(0.1)
    assert breaker.route() is Route.PROBE
    breaker.success()
    assert breaker.state is BreakerState.CLOSED and breaker.route() is Route.PRIMARY


# ---- FailoverLLM ---------------------------------------------------------------------------


def test_the_primary_answers_while_it_works(llm, primary, fallback, metrics):
    assert ask(llm)[0] == "llm"
    assert (primary.requests, fallback.requests) == (1, 0)
    assert gauge(metrics) == BreakerState.CLOSED
    assert failovers(metrics, "unavailable") == 0


def test_closed_open_half_open_closed(llm, primary, fallback, clock, metrics):
    primary.error = LLMUnavailable("Request for unknown model: 'llm' is not found")
    for _ in range(FAILURES):  # each failure of the primary is failed over at once
        assert ask(llm)[0] == "llm_fallback"
    assert failovers(metrics, "unavailable") == FAILURES
    assert gauge(metrics) == BreakerState.OPEN and primary.requests == FAILURES

    assert ask(llm)[0] == "llm_fallback"  # open: the primary is not asked
    assert primary.requests == FAILURES and failovers(metrics, "breaker_open") == 1

    primary.error, primary.ready_now = None, False  # back, but not loaded yet
    clock.advance(COOLDOWN_S)
    assert ask(llm)[0] == "llm_fallback"  # the probe asked Triton: not ready, so not sent
    assert primary.ready_checks == 1 and primary.requests == FAILURES
    assert gauge(metrics) == BreakerState.OPEN

    primary.ready_now = True
    clock.advance(COOLDOWN_S - 1)
    assert ask(llm)[0] == "llm_fallback"  # the cooldown starts again at each failed probe
    clock.advance(1)
    assert ask(llm)[0] == "llm"  # the probe: ready, and it answered
    assert gauge(metrics) == BreakerState.CLOSED
    assert ask(llm)[0] == "llm" and primary.ready_checks == 2  # closed: no readiness calls


def test_a_failed_probe_opens_the_breaker_again(llm, primary, clock, metrics):
    primary.error = LLMOverloaded("queue_full", "the waiting queue is full")
    for _ in range(FAILURES):
        assert ask(llm)[0] == "llm_fallback"
    assert failovers(metrics, "overloaded") == FAILURES
    clock.advance(COOLDOWN_S)
    assert ask(llm)[0] == "llm_fallback"  # ready, sent, overloaded again: failed over
    assert primary.requests == FAILURES + 1 and gauge(metrics) == BreakerState.OPEN
    assert ask(llm)[0] == "llm_fallback" and primary.requests == FAILURES + 1


def test_a_primary_too_slow_to_start_fails_over_as_a_timeout(llm, primary, metrics):
    primary.hang = True
    model, generation = ask(llm)
    assert model == "llm_fallback" == generation.model
    assert failovers(metrics, "timeout") == 1


def test_a_rejected_request_is_the_callers_error_not_a_failure(llm, primary, fallback, clock):
    primary.error = LLMRejected("context_length_exceeded", "the prompt does not fit")
    for _ in range(FAILURES + 2):
        with pytest.raises(LLMRejected):
            ask(llm)
    assert fallback.requests == 0 and llm.breaker.state is BreakerState.CLOSED
    # ... and a rejected probe leaves the breaker half-open for the next request to probe
    primary.error = LLMUnavailable("down")
    for _ in range(FAILURES):
        ask(llm)
    clock.advance(COOLDOWN_S)
    primary.error = LLMRejected("context_length_exceeded", "the prompt does not fit")
    with pytest.raises(LLMRejected):
        ask(llm)
    assert llm.breaker.route() is Route.PROBE


def test_after_the_first_token_a_failure_reaches_the_caller_and_counts(llm, primary, fallback):
    primary.mid_error = LLMUnavailable("the model is unloading")
    for _ in range(FAILURES):
        with pytest.raises(LLMUnavailable, match="unloading"):
            ask(llm)
    assert fallback.requests == 0  # nothing can be taken back once a token went out
    assert llm.breaker.state is BreakerState.OPEN


def test_when_the_fallback_fails_the_primary_still_gets_the_request(llm, primary, fallback):
    primary.error = LLMUnavailable("primary down")
    for _ in range(FAILURES):
        ask(llm)
    primary.error, fallback.error = None, LLMUnavailable("fallback down")
    assert ask(llm)[0] == "llm"  # open, the fallback failed: the primary answered ...
    assert llm.breaker.state is BreakerState.CLOSED  # ... and that closes the breaker


def test_when_both_fail_the_primarys_error_is_raised(llm, primary, fallback):
    primary.error = LLMTimeout("no answer within 5 s")
    fallback.error = LLMUnavailable("Request for unknown model: 'llm_fallback' is not found")
    with pytest.raises(LLMTimeout) as raised:
        ask(llm)
    assert isinstance(raised.value.__cause__, LLMUnavailable)
    for _ in range(FAILURES):  # open: the fallback first, then the primary, its error again
        with pytest.raises(LLMTimeout):
            ask(llm)
    assert llm.breaker.state is BreakerState.OPEN


def test_a_caller_that_goes_away_during_the_probe_frees_it(llm, primary, clock):
    primary.error = LLMUnavailable("down")
    for _ in range(FAILURES):
        ask(llm)
    clock.advance(COOLDOWN_S)
    primary.error, primary.hang = None, True

    async def go_away():
        answer = llm.stream([{"role": "user", "content": "hi"}], timeout_s=60)
        task = asyncio.create_task(anext(answer))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    llm.wait_s = 30  # the probe waits long: the caller leaves first
    asyncio.run(go_away())
    assert llm.breaker.route() is Route.PROBE


def test_without_a_fallback_errors_reach_the_caller_as_before(primary):
    alone = FailoverLLM(primary)
    assert ask(alone)[0] == "llm"
    primary.error = LLMUnavailable("down")
    for _ in range(FAILURES + 1):
        with pytest.raises(LLMUnavailable):
            ask(alone)
    assert primary.requests == FAILURES + 2


def test_settings_choose_the_roles_per_environment(metrics):
    default = make_llm(OrchestratorSettings(), "127.0.0.1:1", metrics)
    assert (default.primary.model, default.fallback.model) == ("llm", "llm_fallback")
    swapped = OrchestratorSettings(llm_primary="llm_fallback", llm_fallback="llm")
    assert make_llm(swapped, "127.0.0.1:1", metrics).primary.model == "llm_fallback"
    assert make_llm(OrchestratorSettings(llm_fallback=""), "x:1", metrics).fallback is None
    with pytest.raises(ValueError, match="another model"):
        OrchestratorSettings(llm_primary="llm", llm_fallback="llm")
    with pytest.raises(ValueError):  # it must fit tickets.draft_source
        OrchestratorSettings(llm_fallback="a_model_name_longer_than_twenty")
