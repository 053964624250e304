"""The scheduler under load, against the fake engine: cells reserved as they are needed,
preemption, prefixes cached across requests, priorities, and a bounded waiting queue."""

import time

import pytest

from llm_engine.sampling import SamplingParams
from llm_engine.scheduler import FinishReason, Observer, Priority, Request, Scheduler
from tests.utils.fake_engine import FakeEngine
from tests.utils.llm import Collected, generate, wait_for

REPLY = "Hello, world."
BACKGROUND = Priority.BACKGROUND


class Recorder(Observer):
    def __init__(self):
        self.reused: list[int] = []
        self.preemptions = 0
        self.refusals: list[str] = []

    def prefix_reused(self, tokens):
        self.reused.append(tokens)

    def preempted(self):
        self.preemptions += 1

    def rejected(self, code):
        self.refusals.append(code)


@pytest.fixture
def started():
    """Start schedulers with the tests' defaults; every one is stopped at the end."""
    schedulers = []

    def start(engine, **options) -> Scheduler:
        options = {"max_active": 4, "prefill_chunk": 8, **options}
        schedulers.append(Scheduler(engine, **options).start())
        return schedulers[-1]

    yield start
    for scheduler in schedulers:
        scheduler.stop()


def submit(scheduler, prompt="prompt", **params) -> Collected:
    collected = Collected()
    scheduler.submit(collected.request(prompt, **params))
    return collected


def test_a_long_request_does_not_keep_a_later_short_one_waiting(started):
    """With cells for a whole context only, reserving max_tokens up front would make the
    short request wait until the long one ends; grown as they are used, it starts at once."""
    engine = FakeEngine("a" * 200, context_length=256, kv_capacity=256, step_delay_s=0.002)
    scheduler = started(engine)
    long_one = submit(scheduler, max_tokens=250)  # its prompt and reply may fill the context
    wait_for(lambda: len(long_one.deltas) >= 3)
    steps_before = len(engine.steps)
    short = submit(scheduler, max_tokens=3)
    assert short.done.wait(10)
    assert short.text == "aaa"
    assert len(engine.steps) - steps_before <= 8  # a prefill and three decodes, give or take
    assert not long_one.done.is_set()
    assert long_one.done.wait(10) and len(long_one.text) == 200


REPLY_90 = "The quick brown fox jumps over the lazy dog; " * 2


def test_when_cells_run_out_the_newest_is_preempted_and_later_resumes_the_same_text(started):
    # Two replies of 90 tokens cannot both fit 128 cells: one is preempted, then recomputed.
    engine, recorder = FakeEngine(REPLY_90, context_length=128, kv_capacity=128), Recorder()
    scheduler = started(engine, max_active=2, observer=recorder)
    first = submit(scheduler, "first prompt", max_tokens=100)
    second = submit(scheduler, "second prompt", max_tokens=100)
    assert first.done.wait(10) and second.done.wait(10)
    assert recorder.preemptions >= 1
    for collected in (first, second):
        assert collected.finish.reason is FinishReason.STOP
        assert collected.text == REPLY_90  # nothing sent twice, nothing lost
        assert collected.finish.generated_tokens == len(REPLY_90)
    assert second.times[0] < first.times[-1]  # they did run side by side for a while


def test_a_prefix_cached_by_a_finished_request_is_taken_over_by_the_next(started):
    engine, recorder = FakeEngine(REPLY, max_slots=6), Recorder()
    scheduler = started(engine, prefix_cache_entries=2, observer=recorder)
    system = "system: You are a support agent at a bank.\n"
    first_prompt = system + "user: card?\nassistant: "
    assert generate(scheduler, first_prompt, max_tokens=64, timeout_s=10).text == REPLY
    # Slots 0-3 run sequences, 4-5 hold the cache: a share into 4 or 5 stores an entry.
    assert [target for _, target, _ in engine.shared] == [5]  # stored; nothing to reuse yet
    takeovers = lambda: [share for share in engine.shared if share[1] < 4]  # noqa: E731

    before = engine.computed_tokens()
    second_prompt = system + "user: PIN?\nassistant: "
    assert generate(scheduler, second_prompt, max_tokens=64, timeout_s=10).text == REPLY
    [(source, _, length)] = takeovers()
    assert source == 5  # taken over from the cache entry, not from a running slot
    assert length == len(system) + len("user: ") and recorder.reused == [length]
    assert engine.computed_tokens() - before == len(second_prompt) - length + len(REPLY)

    # A follow-up turn starts with the first exchange: its prompt comes from the cache, its
    # reply is computed again (a reply's cells are not kept: every later step would pay).
    follow_up = first_prompt + REPLY + "\nuser: thanks\nassistant: "
    assert generate(scheduler, follow_up, max_tokens=64, timeout_s=10).text == REPLY
    source, _, length = takeovers()[-1]
    assert (source, length) == (5, len(first_prompt))


def test_cached_prefixes_give_way_when_cells_are_needed(started):
    engine = FakeEngine(REPLY, max_slots=6, context_length=128, kv_capacity=128)
    scheduler = started(engine, max_active=2, prefix_cache_entries=4)
    for topic in ("cards", "loans", "savings", "mortgages", "insurance"):
        prompt = f"system: answer questions about {topic} only.\n" + "x" * 40
        result = generate(scheduler, prompt, max_tokens=20, timeout_s=10)
        assert result.text == REPLY, result.finish.error
    assert len(scheduler._cache) < 4  # older entries were evicted to admit the newer prompts


def test_interactive_requests_are_admitted_before_background_ones(started):
    scheduler = started(FakeEngine("a" * 200, step_delay_s=0.002), max_active=1)
    running = submit(scheduler, max_tokens=30)
    wait_for(lambda: running.deltas)
    drafts = [submit(scheduler, max_tokens=3, priority=BACKGROUND) for _ in range(2)]
    chat = submit(scheduler, max_tokens=3)
    for collected in (running, *drafts, chat):
        assert collected.done.wait(10)
    assert chat.times[0] < drafts[0].times[0] < drafts[1].times[0]


@pytest.fixture
def one_busy_slot(started):
    """One slot, taken by a 200-token reply at 2 ms a step; a queue of two at most."""
    recorder = Recorder()
    engine = FakeEngine("a" * 200, step_delay_s=0.002)
    scheduler = started(engine, max_active=1, max_waiting=2, observer=recorder)
    busy = submit(scheduler, max_tokens=200)
    wait_for(lambda: busy.deltas)
    return scheduler, recorder


def test_a_full_waiting_queue_refuses_at_once_with_a_retryable_error(one_busy_slot):
    one_busy_slot, recorder = one_busy_slot
    queued = [submit(one_busy_slot, max_tokens=3) for _ in range(2)]
    refused = submit(one_busy_slot, max_tokens=3)
    assert refused.done.wait(1)
    assert refused.finish.reason is FinishReason.ERROR
    assert refused.finish.code == "queue_full" and "retry" in refused.finish.error
    assert one_busy_slot.counts == (1, 2)
    assert not any(q.done.is_set() for q in queued)
    wait_for(lambda: recorder.refusals == ["queue_full"])


def test_an_interactive_request_takes_a_full_queues_place_from_a_background_one(one_busy_slot):
    one_busy_slot, _ = one_busy_slot
    chat = submit(one_busy_slot, max_tokens=3)
    draft = submit(one_busy_slot, max_tokens=3, priority=BACKGROUND)
    late_chat = submit(one_busy_slot, max_tokens=3)
    assert draft.done.wait(1) and draft.finish.code == "queue_full"
    assert chat.done.wait(10) and late_chat.done.wait(10)
    assert chat.text == late_chat.text == "aaa"


def test_a_request_waiting_past_its_deadline_ends_with_queue_timeout(started):
    recorder = Recorder()
    engine = FakeEngine("a" * 200, step_delay_s=0.002)
    scheduler = started(engine, max_active=1, queue_timeout_s=0.1, observer=recorder)
    busy = submit(scheduler, max_tokens=200)
    waiting = submit(scheduler, max_tokens=3)
    assert waiting.done.wait(5)
    assert waiting.finish.code == "queue_timeout" and "retry" in waiting.finish.error
    assert waiting.deltas == [] and not busy.done.is_set()
    assert recorder.refusals == ["queue_timeout"]
    assert busy.done.wait(10) and len(busy.text) == 200  # the running one is not subject to it


def test_is_cancelled_is_asked_at_most_every_poll_interval_not_every_step(started):
    calls = []
    scheduler = started(FakeEngine("a" * 100, step_delay_s=0.001), cancel_poll_s=0.05)
    done = Collected()
    request = Request(
        "prompt",
        SamplingParams(max_tokens=100),
        done.deltas.append,
        lambda finish: done.done.set(),
        is_cancelled=lambda: calls.append(time.monotonic()) or False,
    )
    began = time.monotonic()
    scheduler.submit(request)
    assert done.done.wait(10)
    elapsed = time.monotonic() - began
    assert len(done.deltas) == 100
    assert len(calls) <= elapsed / 0.05 + 2, (len(calls), elapsed)
