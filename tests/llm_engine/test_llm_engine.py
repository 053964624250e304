"""The scheduler on both real engines, in process: streaming, stops, seeds, cancellation, limits."""

import time

import pytest

from llm_engine.chat import parse_messages
from llm_engine.scheduler import GROWTH_BLOCK, FinishReason, Observer, Scheduler
from tests.utils.llm import Collected, generate

pytestmark = pytest.mark.slow  # real engines; the fast lane has tests/llm_engine/test_scheduler.py

QUESTION = '[{"role": "user", "content": "What is the capital of France? Answer in one sentence."}]'


@pytest.fixture(scope="module", params=["llama_cpp", "transformers"])
def engine(request):
    if request.param == "llama_cpp":
        from llm_engine.llama_cpp_engine import LlamaCppEngine

        engine = LlamaCppEngine(max_slots=4, context_size=1024, step_tokens=128, threads=2)
        yield engine
        engine.close()
    else:
        from llm_engine.transformers_engine import TransformersEngine

        folder = request.getfixturevalue("hf_model_folder")
        yield TransformersEngine(folder, max_slots=4, context_size=1024)


@pytest.fixture
def scheduler(engine):
    scheduler = Scheduler(engine, max_active=4, step_token_budget=128, prefill_chunk=32).start()
    yield scheduler
    scheduler.stop()


def chat_prompt(engine, raw: str = QUESTION) -> str:
    return engine.render_chat(parse_messages(raw))


def test_streams_coherent_text_in_pieces(engine, scheduler):
    result = generate(scheduler, chat_prompt(engine), max_tokens=24)
    assert result.finish.reason in (FinishReason.STOP, FinishReason.LENGTH)
    assert len(result.deltas) > 3
    assert "Paris" in result.text
    assert 0 < result.finish.generated_tokens <= 24
    assert result.finish.prompt_tokens > 10


def test_stop_word_ends_the_text_before_it(engine, scheduler):
    full = generate(scheduler, chat_prompt(engine), max_tokens=24).text
    word = "Paris"
    stopped = generate(scheduler, chat_prompt(engine), max_tokens=24, stop=(word,))
    assert stopped.finish.reason is FinishReason.STOP
    assert stopped.text == full[: full.index(word)]


def test_same_seed_same_text_different_seed_different_text(engine, scheduler):
    # Compared one at a time: batched kernels sum in another order, so a sequence decoded
    # beside others is not bit-identical to the same sequence decoded alone.
    prompt = chat_prompt(engine, '[{"role": "user", "content": "Tell me a short story."}]')
    settings = {"max_tokens": 16, "temperature": 1.0, "top_p": 0.95}
    first = generate(scheduler, prompt, seed=7, **settings).text
    assert generate(scheduler, prompt, seed=7, **settings).text == first
    assert generate(scheduler, prompt, seed=8, **settings).text != first
    greedy = generate(scheduler, prompt, max_tokens=16).text
    assert generate(scheduler, prompt, max_tokens=16).text == greedy


def test_context_overflow_is_a_clear_error(engine, scheduler):
    result = generate(scheduler, "word " * 2000, max_tokens=4)
    assert result.finish.reason is FinishReason.ERROR
    assert "the context holds 1024" in result.finish.error


def test_bad_sampling_settings_are_refused(scheduler, engine):
    result = generate(scheduler, chat_prompt(engine), max_tokens=0)
    assert result.finish.reason is FinishReason.ERROR
    assert "max_tokens" in result.finish.error


def test_cancelled_sequence_frees_its_slot_for_a_waiting_request(engine):
    scheduler = Scheduler(engine, max_active=1, step_token_budget=128, prefill_chunk=32).start()
    try:
        long_one, waiting = Collected(), Collected()
        scheduler.submit(long_one.request(chat_prompt(engine), max_tokens=400, ignore_eos=True))
        scheduler.submit(waiting.request(chat_prompt(engine), max_tokens=4))
        deadline = time.monotonic() + 60
        while len(long_one.deltas) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert scheduler.counts == (1, 1)  # one running, one waiting for the slot
        long_one.cancelled.set()
        assert long_one.done.wait(30) and waiting.done.wait(60)
        assert long_one.finish.reason is FinishReason.CANCELLED
        assert long_one.finish.generated_tokens < 400
        assert waiting.finish.reason in (FinishReason.STOP, FinishReason.LENGTH)
    finally:
        scheduler.stop()


def test_new_request_joins_the_running_batch_without_waiting(engine, scheduler):
    # ignore_eos: the first always runs its 32 tokens, so the second is submitted while it runs
    # and, joining its batch, streams and finishes before it (one slot: it would wait it out).
    first, second = Collected(), Collected()
    scheduler.submit(first.request(chat_prompt(engine), max_tokens=32, ignore_eos=True))
    while len(first.deltas) < 2:
        time.sleep(0.005)
    scheduler.submit(second.request(chat_prompt(engine), max_tokens=4))
    assert first.done.wait(300) and second.done.wait(300)
    assert first.finish.reason is FinishReason.LENGTH
    assert first.finish.generated_tokens == 32
    assert second.times and second.times[-1] < first.times[-1]


def test_stop_ends_running_and_waiting_requests_with_an_error(engine):
    scheduler = Scheduler(engine, max_active=1, step_token_budget=128, prefill_chunk=32).start()
    running, waiting = Collected(), Collected()
    scheduler.submit(running.request(chat_prompt(engine), max_tokens=400, ignore_eos=True))
    scheduler.submit(waiting.request(chat_prompt(engine), max_tokens=400))
    while not running.deltas:
        time.sleep(0.005)
    scheduler.stop("unloading for the test")
    for collected in (running, waiting):
        assert collected.done.wait(10)
        assert collected.finish.reason is FinishReason.ERROR
        assert collected.finish.error == "unloading for the test"
    late = generate(scheduler, chat_prompt(engine), max_tokens=4)
    assert late.finish.reason is FinishReason.ERROR


class Recorder(Observer):
    """Records how many cached tokens each new sequence took over."""

    def __init__(self):
        self.reused: list[int] = []

    def prefix_reused(self, tokens: int) -> None:
        self.reused.append(tokens)


def test_a_prompt_sharing_a_cached_prefix_reuses_its_cells(engine):
    recorder = Recorder()
    scheduler = Scheduler(engine, max_active=4, step_token_budget=128, observer=recorder).start()
    try:
        system = {"role": "system", "content": "You are a support agent at a bank. Be brief."}
        first, second = Collected(), Collected()
        ask = [system, {"role": "user", "content": "What is the capital of France?"}]
        other = [system, {"role": "user", "content": "How do I reset my PIN?"}]
        scheduler.submit(first.request(engine.render_chat(ask), max_tokens=24))
        scheduler.submit(second.request(engine.render_chat(other), max_tokens=24))
        assert first.done.wait(120) and second.done.wait(120)
    finally:
        scheduler.stop()
    assert recorder.reused and recorder.reused[0] >= 10  # the system prompt, computed once
    assert "Paris" in first.text
    assert "PIN" in second.text or "pin" in second.text.lower()


def test_a_finished_requests_prompt_stays_cached_for_the_next_request(engine):
    recorder = Recorder()
    # Two of the engine's four sequence ids run requests; the other two hold cached prefixes.
    scheduler = Scheduler(
        engine, max_active=2, prefix_cache_entries=2, step_token_budget=128, observer=recorder
    ).start()
    try:
        system = {"role": "system", "content": "You are a support agent at a bank. Be brief."}
        ask = [system, {"role": "user", "content": "What is the capital of France?"}]
        first = generate(scheduler, engine.render_chat(ask), max_tokens=24)
        assert recorder.reused == []
        follow_up = [*ask, {"role": "assistant", "content": first.text}]
        follow_up.append({"role": "user", "content": "And of Italy?"})
        second = generate(scheduler, engine.render_chat(follow_up), max_tokens=24)
    finally:
        scheduler.stop()
    assert "Paris" in first.text and "Rome" in second.text
    assert recorder.reused and recorder.reused[0] >= 20  # at least the system prompt


def test_a_preempted_sequence_is_recomputed_and_finishes(engine, monkeypatch):
    class Recorder(Observer):
        preemptions = 0

        def preempted(self) -> None:
            self.preemptions += 1

    prompt = chat_prompt(engine)
    start = len(engine.tokenize(prompt)) + GROWTH_BLOCK  # the cells a sequence starts with
    monkeypatch.setattr(engine, "kv_capacity", 2 * start + 16)  # both start; both cannot end
    recorder = Recorder()
    scheduler = Scheduler(engine, max_active=2, step_token_budget=128, observer=recorder).start()
    try:
        first, second = Collected(), Collected()
        scheduler.submit(first.request(prompt, max_tokens=48, ignore_eos=True))
        scheduler.submit(second.request(prompt, max_tokens=48, ignore_eos=True))
        assert first.done.wait(300) and second.done.wait(300)
    finally:
        scheduler.stop()
    assert recorder.preemptions >= 1
    for collected in (first, second):
        assert collected.finish.reason is FinishReason.LENGTH, collected.finish.error
        assert collected.finish.generated_tokens == 48
        assert "Paris" in collected.text
