"""The continuous-batching scheduler against a fake engine: fast, deterministic, no model."""

import threading

import pytest

from llm_engine.scheduler import FinishReason, Observer, Scheduler
from tests.utils.fake_engine import FakeEngine
from tests.utils.llm import Collected, generate, wait_for

REPLY = "Hello, world."


class Recorder(Observer):
    def __init__(self):
        self.queue_times: list[float] = []
        self.reused: list[int] = []
        self.finishes: list[FinishReason] = []

    def queued(self, seconds):
        self.queue_times.append(seconds)

    def prefix_reused(self, tokens):
        self.reused.append(tokens)

    def finished(self, finish, seconds):
        self.finishes.append(finish.reason)


@pytest.fixture
def engine():
    return FakeEngine(REPLY)


def running(engine, **options):
    return Scheduler(engine, **{"max_active": 4, "prefill_chunk": 8, **options}).start()


@pytest.fixture
def scheduler(engine):
    scheduler = running(engine)
    yield scheduler
    scheduler.stop()


def test_greedy_reply_streams_in_pieces_and_ends_at_eos(scheduler):
    result = generate(scheduler, "user: hi\nassistant: ", max_tokens=64, timeout_s=10)
    assert result.finish.reason is FinishReason.STOP
    assert result.text == REPLY and len(result.deltas) == len(REPLY)
    assert result.finish.generated_tokens == len(REPLY)
    assert result.finish.prompt_tokens == len("user: hi\nassistant: ")


def test_max_tokens_ends_with_length(scheduler):
    result = generate(scheduler, "prompt", max_tokens=5, timeout_s=10)
    assert result.finish.reason is FinishReason.LENGTH
    assert result.text == REPLY[:5] and result.finish.generated_tokens == 5


def test_stop_word_is_cut_and_never_streamed(scheduler):
    result = generate(scheduler, "prompt", max_tokens=64, stop=("world",), timeout_s=10)
    assert result.finish.reason is FinishReason.STOP
    assert result.text == "Hello, "
    assert "w" not in "".join(result.deltas)


def test_characters_split_across_tokens_arrive_whole():
    engine = FakeEngine("café ☕ ok")
    scheduler = running(engine)
    try:
        result = generate(scheduler, "prompt", max_tokens=64, timeout_s=10)
    finally:
        scheduler.stop()
    assert result.text == "café ☕ ok"
    assert all("\ufffd" not in delta for delta in result.deltas)


def test_a_long_prompt_is_prefilled_in_chunks(engine, scheduler):
    prompt = "x" * 30
    assert generate(scheduler, prompt, max_tokens=3, timeout_s=10).text == REPLY[:3]
    prefill = [i for step in engine.steps for i in step if len(i.tokens) > 1 or i.start == 0]
    assert [len(i.tokens) for i in prefill] == [8, 8, 8, 6]
    assert [i.want_logits for i in prefill] == [False, False, False, True]


def test_running_sequences_decode_together_in_one_forward_pass():
    engine = FakeEngine(REPLY, step_delay_s=0.002)
    scheduler = running(engine)
    try:
        results = [Collected() for _ in range(3)]
        for i, collected in enumerate(results):
            scheduler.submit(collected.request(f"prompt {i}", max_tokens=64))
        for collected in results:
            assert collected.done.wait(10)
    finally:
        scheduler.stop()
    assert all(c.text == REPLY for c in results)
    widest = max(len({i.slot for i in step if len(i.tokens) == 1}) for step in engine.steps)
    assert widest == 3  # one decode token of each sequence in the same step


def test_beyond_max_active_requests_wait_in_order_and_their_queue_time_is_measured():
    engine, recorder = FakeEngine("a" * 60, step_delay_s=0.005), Recorder()
    scheduler = running(engine, max_active=1, observer=recorder)
    try:
        first, second, third = Collected(), Collected(), Collected()
        for collected in (first, second, third):
            scheduler.submit(collected.request("prompt", max_tokens=60))
        wait_for(lambda: first.deltas)
        assert scheduler.counts == (1, 2)
        for collected in (first, second, third):
            assert collected.done.wait(10)
    finally:
        scheduler.stop()
    assert first.times[-1] < second.times[0] and second.times[-1] < third.times[0]
    assert recorder.queue_times[2] > recorder.queue_times[0]


def test_a_new_request_joins_a_running_batch_without_waiting_for_it():
    engine = FakeEngine("a" * 200, step_delay_s=0.002)
    scheduler = running(engine)
    try:
        long_one, short = Collected(), Collected()
        scheduler.submit(long_one.request("prompt", max_tokens=200))
        wait_for(lambda: len(long_one.deltas) >= 5)
        scheduler.submit(short.request("prompt", max_tokens=3))
        assert short.done.wait(10) and long_one.done.wait(10)
    finally:
        scheduler.stop()
    assert short.times[-1] < long_one.times[-1]


@pytest.fixture
def one_slot():
    """One slot and a 200-token reply at 2 ms a step: time to act while it runs."""
    scheduler = running(FakeEngine("a" * 200, step_delay_s=0.002), max_active=1)
    yield scheduler
    scheduler.stop()


def submit(scheduler, max_tokens: int) -> Collected:
    collected = Collected()
    scheduler.submit(collected.request("prompt", max_tokens=max_tokens))
    return collected


def test_cancelling_frees_the_slot_for_a_waiting_request(one_slot):
    long_one, waiting = submit(one_slot, 200), submit(one_slot, 3)
    wait_for(lambda: len(long_one.deltas) >= 3)
    long_one.cancelled.set()
    assert long_one.done.wait(10) and waiting.done.wait(10)
    assert long_one.finish.reason is FinishReason.CANCELLED
    assert long_one.finish.generated_tokens < 200
    assert waiting.finish.reason is FinishReason.LENGTH and waiting.text == "aaa"


def test_a_cancelled_waiting_request_ends_without_running(one_slot):
    first, queued = submit(one_slot, 200), submit(one_slot, 3)
    queued.cancelled.set()
    assert queued.done.wait(10)
    assert queued.finish.reason is FinishReason.CANCELLED and queued.deltas == []
    first.cancelled.set()
    assert first.done.wait(10)


def test_prompts_that_do_not_fit_or_bad_settings_end_at_once_with_a_clear_error(scheduler):
    too_long = generate(scheduler, "x" * 300, max_tokens=4, timeout_s=10)
    assert too_long.finish.reason is FinishReason.ERROR
    assert "the context holds 256" in too_long.finish.error
    for params, message in (
        ({"max_tokens": 0}, "max_tokens"),
        ({"temperature": 3.0}, "temperature"),
        ({"top_p": 0.0}, "top_p"),
        ({"stop": ("",)}, "stop words"),
    ):
        result = generate(scheduler, "prompt", timeout_s=10, **params)
        assert result.finish.reason is FinishReason.ERROR and message in result.finish.error
    assert generate(scheduler, "", timeout_s=10).finish.error == "the prompt is empty"


def test_same_seed_same_text_other_seed_other_text(scheduler):
    settings = {"max_tokens": 24, "temperature": 1.0, "seed": 7}
    first = generate(scheduler, "prompt", timeout_s=10, **settings).text
    assert generate(scheduler, "prompt", timeout_s=10, **settings).text == first
    assert generate(scheduler, "prompt", timeout_s=10, **{**settings, "seed": 8}).text != first
    assert first != REPLY  # the temperature let it wander from the greedy reply


def test_a_failed_forward_pass_ends_that_steps_sequences_and_the_next_request_is_served(
    engine, scheduler
):
    engine.fail_next = "device lost"
    failed = generate(scheduler, "prompt", max_tokens=8, timeout_s=10)
    assert failed.finish.reason is FinishReason.ERROR
    assert failed.finish.error == "generation failed: device lost"
    assert generate(scheduler, "prompt", max_tokens=8, timeout_s=10).text == REPLY[:8]


def test_a_prompt_sharing_a_cached_prefix_takes_its_cells_over():
    engine, recorder = FakeEngine(REPLY, step_delay_s=0.002), Recorder()
    scheduler = running(engine, observer=recorder)
    system = "system: You are a support agent at a bank.\n"
    try:
        first, second = Collected(), Collected()
        scheduler.submit(first.request(system + "user: card?\nassistant: ", max_tokens=64))
        wait_for(lambda: first.deltas)
        scheduler.submit(second.request(system + "user: PIN?\nassistant: ", max_tokens=64))
        assert first.done.wait(10) and second.done.wait(10)
    finally:
        scheduler.stop()
    assert recorder.reused and recorder.reused[0] >= len(system)
    assert engine.shared and engine.shared[0][2] == recorder.reused[0]
    assert first.text == second.text == REPLY


def test_stop_ends_running_and_waiting_requests_and_refuses_new_ones(one_slot):
    running_one, waiting = submit(one_slot, 200), submit(one_slot, 200)
    wait_for(lambda: running_one.deltas)
    one_slot.stop("unloading for the test")
    for collected in (running_one, waiting):
        assert collected.done.wait(10)
        assert collected.finish.reason is FinishReason.ERROR
        assert collected.finish.error == "unloading for the test"
    late = generate(one_slot, "prompt", max_tokens=4, timeout_s=10)
    assert late.finish.error == "unloading for the test"


def test_going_away_ends_every_stream_so_that_an_unload_can_finish():
    engine = FakeEngine("a" * 200, step_delay_s=0.002)
    leaving = threading.Event()
    scheduler = Scheduler(engine, going_away=leaving.is_set, going_away_interval_s=0.01).start()
    try:
        collected = Collected()
        scheduler.submit(collected.request("prompt", max_tokens=200))
        wait_for(lambda: collected.deltas)
        leaving.set()
        assert collected.done.wait(10)
    finally:
        scheduler.stop()
    assert collected.finish.reason is FinishReason.ERROR
    assert collected.finish.generated_tokens < 200
