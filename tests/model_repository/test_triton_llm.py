"""The `llm` model in a real Triton: streaming over gRPC, concurrency, cancellation, unload."""

import contextlib
import queue
import shutil
import threading
import time

import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from export.repository import COMMITTED_REPOSITORY
from orchestrator.triton.launcher import TritonServer
from tests.utils.ports import loopback_triton
from tests.utils.triton_config import config_json

MAX_ACTIVE = 4
QUESTION = '[{"role": "user", "content": "What is the capital of France? Answer in one sentence."}]'


@pytest.fixture(scope="module")
def llm_server(tmp_path_factory):
    repository = tmp_path_factory.mktemp("llm-repository")
    shutil.copytree(COMMITTED_REPOSITORY / "llm", repository / "llm")
    settings = loopback_triton(repository, tmp_path_factory.mktemp("llm-triton"))
    with TritonServer(settings, models=()) as server:
        client = grpcclient.InferenceServerClient(settings.grpc_url)
        config = config_json(
            repository / "llm",
            max_active_sequences=str(MAX_ACTIVE),
            context_size="2048",
            threads="2",
            queue_timeout_s="120",  # 16 streams queue for 4 slots: not a race with a busy machine
        )
        client.load_model("llm", config=config)
        server.client = client
        server.config = config
        yield server


def _inputs(messages: str = QUESTION, max_tokens: int = 24, stream: bool = True, **extra):
    def tensor(name, value, dtype, triton_type):
        t = grpcclient.InferInput(name, [1, 1], triton_type)
        t.set_data_from_numpy(np.array([[value]], dtype=dtype))
        return t

    inputs = [
        tensor("messages", messages.encode(), object, "BYTES"),
        tensor("max_tokens", max_tokens, np.int32, "INT32"),
        tensor("stream", stream, bool, "BOOL"),
    ]
    if "seed" in extra:
        inputs.append(tensor("seed", extra["seed"], np.uint64, "UINT64"))
    if extra.get("ignore_eos"):
        inputs.append(tensor("ignore_eos", True, bool, "BOOL"))
    if "temperature" in extra:
        inputs.append(tensor("temperature", extra["temperature"], np.float32, "FP32"))
    if "priority" in extra:
        inputs.append(tensor("priority", extra["priority"].encode(), object, "BYTES"))
    return inputs


class StreamClient:
    """One gRPC stream carrying one request; collects its responses as they arrive.

    (An error on a stream does not say which request it belongs to, hence one request each.)
    """

    def __init__(self, url: str):
        self.client = grpcclient.InferenceServerClient(url)
        self.events: list[tuple[float, str, object]] = []
        self.error: str | None = None
        self.finished = threading.Event()
        self.client.start_stream(callback=self._on_response)

    def _on_response(self, result, error):
        if error is not None:
            self.error = str(error)
            self.finished.set()
            return
        response = result.get_response()
        if "text_output" in [o.name for o in response.outputs]:
            text = result.as_numpy("text_output").reshape(-1)[0].decode()
            self.events.append((time.perf_counter(), text, result))
        if response.parameters.get("triton_final_response").bool_param:
            self.finished.set()

    def send(self, **kwargs) -> "StreamClient":
        self.client.async_stream_infer("llm", _inputs(**kwargs), enable_empty_final_response=True)
        return self

    @property
    def text(self) -> str:
        return "".join(text for _, text, _ in self.events)

    def close(self, cancel: bool = False):
        self.client.stop_stream(cancel_requests=cancel)
        self.client.close()


def _send(url: str, **kwargs) -> StreamClient:
    return StreamClient(url).send(**kwargs)


def _metric(server, name: str, **labels) -> float:
    text = httpx.get(server.settings.metrics_url).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_stream_delivers_coherent_text_before_the_end(llm_server):
    stream = _send(llm_server.settings.grpc_url, max_tokens=32)
    try:
        assert stream.finished.wait(60)
    finally:
        stream.close()
    pieces = [text for _, text, _ in stream.events if text]
    assert len(pieces) > 3  # arrived in pieces, the first well before the last
    assert stream.events[0][0] < stream.events[-1][0]
    assert "Paris" in stream.text
    final = stream.events[-1][2]
    assert final.as_numpy("finish_reason").reshape(-1)[0].decode() in ("stop", "length")
    assert 0 < final.as_numpy("num_output_tokens").reshape(-1)[0] <= 32


def test_non_streaming_request_gets_the_whole_text_once(llm_server):
    client = grpcclient.InferenceServerClient(llm_server.settings.grpc_url)
    results: queue.Queue = queue.Queue()
    client.start_stream(callback=lambda result, error: results.put((result, error)))
    client.async_stream_infer("llm", _inputs(stream=False), request_id="whole")
    result, error = results.get(timeout=60)
    client.stop_stream()
    assert error is None
    assert "Paris" in result.as_numpy("text_output").reshape(-1)[0].decode()


def test_sixteen_streams_queue_for_four_slots_and_all_finish(llm_server):
    url = llm_server.settings.grpc_url
    streams = [_send(url, max_tokens=16, seed=i, temperature=0.7) for i in range(16)]
    try:
        for i, stream in enumerate(streams):
            assert stream.finished.wait(120), i
    finally:
        for stream in streams:
            stream.close()
    assert [s.error for s in streams] == [None] * 16
    assert all(s.text.strip() for s in streams)


def test_sixteen_concurrent_streams_run_at_once_in_sixteen_slots(llm_server):
    """The committed config's 16 slots: every stream has its first token before any stream
    ends (with fewer slots, the later ones would wait for a finished stream's slot)."""
    slots = 16
    sixteen = config_json(
        llm_server.settings.model_repository / "llm",
        max_active_sequences=str(slots),
        context_size="2048",
        threads="2",
    )
    llm_server.client.load_model("llm", config=sixteen)
    url = llm_server.settings.grpc_url
    try:
        streams = [_send(url, max_tokens=24, ignore_eos=True) for _ in range(slots)]
        try:
            for i, stream in enumerate(streams):
                assert stream.finished.wait(300), i
        finally:
            for stream in streams:
                stream.close()
    finally:
        llm_server.client.load_model("llm", config=llm_server.config)
    assert [s.error for s in streams] == [None] * slots
    first_tokens = [next(t for t, text, _ in s.events if text) for s in streams]
    ends = [s.events[-1][0] for s in streams]
    assert max(first_tokens) < min(ends), "a stream waited for another to finish"


def test_bad_requests_get_clear_errors(llm_server):
    url = llm_server.settings.grpc_url
    long_message = '[{"role": "user", "content": "' + "word " * 3000 + '"}]'
    cases = {
        "messages are not valid JSON": {"messages": "not json"},
        "the context holds 2048": {"messages": long_message},
        "max_tokens must be at least 1": {"max_tokens": 0},
        "priority must be interactive or background": {"priority": "urgent"},
    }
    for reason, kwargs in cases.items():
        stream = _send(url, **kwargs)
        try:
            assert stream.finished.wait(60), reason
        finally:
            stream.close()
        assert reason in (stream.error or ""), stream.error


def test_cancelled_streams_free_their_slots_for_a_queued_request(llm_server):
    url = llm_server.settings.grpc_url
    cancelled_before = _metric(
        llm_server, "support_llm_request_finished_total", finished_reason="cancelled"
    )
    long_streams = [_send(url, max_tokens=300, ignore_eos=True) for _ in range(MAX_ACTIVE)]
    deadline = time.monotonic() + 60
    while _metric(llm_server, "support_llm_num_requests_running") < MAX_ACTIVE:
        assert time.monotonic() < deadline, "the long streams never all ran"
        time.sleep(0.1)
    queued = _send(url, max_tokens=8)
    try:
        time.sleep(0.5)
        assert _metric(llm_server, "support_llm_num_requests_waiting") == 1
        assert not queued.finished.is_set()
        for stream in long_streams:
            stream.close(cancel=True)
        assert queued.finished.wait(60)
    finally:
        queued.close()
    assert queued.text.strip()
    deadline = time.monotonic() + 10
    while _metric(llm_server, "support_llm_num_requests_running") > 0:
        assert time.monotonic() < deadline, "slots were not freed"
        time.sleep(0.1)
    cancelled = _metric(
        llm_server, "support_llm_request_finished_total", finished_reason="cancelled"
    )
    assert cancelled - cancelled_before == MAX_ACTIVE


def test_metrics_follow_vllms_names(llm_server):
    text = httpx.get(llm_server.settings.metrics_url).text
    for name in (
        "support_llm_time_to_first_token_seconds_bucket",
        "support_llm_inter_token_latency_seconds_bucket",
        "support_llm_e2e_request_latency_seconds_bucket",
        "support_llm_request_queue_time_seconds_bucket",
        "support_llm_prompt_tokens_total",
        "support_llm_generation_tokens_total",
        "support_llm_num_requests_running",
        "support_llm_num_requests_waiting",
    ):
        assert name in text, name


def _stub_processes(server) -> int:
    import psutil

    stubs = 0
    for child in psutil.Process(server.process.pid).children(recursive=True):
        # a stub that exits between the listing and the read is not counted
        with contextlib.suppress(psutil.NoSuchProcess):
            stubs += child.name() == "triton_python_backend_stub"
    return stubs


def test_a_reply_that_cannot_fit_the_context_is_refused_with_a_stable_code(llm_server):
    stream = _send(llm_server.settings.grpc_url, max_tokens=2040)  # the prompt fits, not both
    try:
        assert stream.finished.wait(30)
    finally:
        stream.close()
    assert (stream.error or "").startswith("[context_length_exceeded] the prompt has")
    assert "the context holds 2048" in stream.error


def test_the_llm_client_keeps_one_channel_per_event_loop(llm_server):
    import asyncio

    from orchestrator.triton.llm_client import LLMClient

    async def two_requests() -> bool:
        llm = LLMClient(llm_server.settings.grpc_url)
        await llm.generate([{"role": "user", "content": "Hi"}], max_tokens=2)
        channel = llm._client
        await llm.generate([{"role": "user", "content": "Hi"}], max_tokens=2)
        try:
            return channel is not None and llm._client is channel
        finally:
            await llm.close()

    assert asyncio.run(two_requests())


def test_a_request_the_llm_client_gives_up_on_is_cancelled_in_triton(llm_server):
    """A timeout cancels the request in Triton at once, while the caller still holds the error
    and the client's channel is open: the request must not run on to max_tokens. (It fails
    when the client neither cancels the call nor lets the timeout cancel the read.)"""
    import asyncio

    from orchestrator.triton.llm_client import LLMClient, LLMTimeout

    cancelled = "support_llm_request_finished_total"
    before = _metric(llm_server, cancelled, finished_reason="cancelled")

    async def give_up_and_watch() -> None:
        llm = LLMClient(llm_server.settings.grpc_url)  # its channel stays open meanwhile
        try:
            await llm.generate(
                [{"role": "user", "content": "Tell a long story."}],
                max_tokens=1000, ignore_eos=True, timeout_s=1.0,
            )  # fmt: skip
            raise AssertionError("1000 tokens came within a second")
        except LLMTimeout as error:
            kept = error  # noqa: F841  # alive on purpose, traceback and all
            deadline = time.monotonic() + 10
            while _metric(llm_server, cancelled, finished_reason="cancelled") == before:
                assert time.monotonic() < deadline, "the request still runs in Triton"
                await asyncio.sleep(0.2)
        finally:
            await llm.close()

    asyncio.run(give_up_and_watch())


def test_a_full_waiting_queue_refuses_at_once_and_the_client_calls_it_overloaded(llm_server):
    import asyncio

    from orchestrator.triton.llm_client import LLMClient, LLMOverloaded

    one_slot = config_json(
        llm_server.settings.model_repository / "llm",
        max_active_sequences="1",
        max_waiting="1",
        context_size="2048",
        threads="2",
    )
    llm_server.client.load_model("llm", config=one_slot)
    url = llm_server.settings.grpc_url

    async def draft():
        llm = LLMClient(url)
        try:
            await llm.generate(
                [{"role": "user", "content": "Hi"}], max_tokens=4, priority="background"
            )
        finally:
            await llm.close()

    running = _send(url, max_tokens=300, ignore_eos=True)
    waiting = _send(url, max_tokens=4, priority="interactive")
    try:
        deadline = time.monotonic() + 60
        while not running.events or _metric(llm_server, "support_llm_num_requests_waiting") < 1:
            assert time.monotonic() < deadline, "the queue never filled"
            time.sleep(0.05)
        with pytest.raises(LLMOverloaded) as refused:
            asyncio.run(draft())  # a background request cannot take the interactive one's place
        assert refused.value.code == "queue_full"
        deadline = time.monotonic() + 10
        while _metric(llm_server, "support_llm_request_rejected_total", code="queue_full") < 1:
            assert time.monotonic() < deadline, "the refusal was not counted"
            time.sleep(0.1)
    finally:
        for stream in (running, waiting):
            stream.close(cancel=True)
        # Reload only once the cancelled requests have ended: a reload while they were still
        # being cancelled left the old instance's process alive in some full runs (open; see
        # the README's "LLM failover"), and the next test counts the llm's processes.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (
            _metric(llm_server, "support_llm_num_requests_running")
            + _metric(llm_server, "support_llm_num_requests_waiting")
        ):
            time.sleep(0.1)
        llm_server.client.load_model("llm", config=llm_server.config)


def test_after_streams_read_to_their_end_the_model_unloads(llm_server):
    """One stream, then sixteen, through the orchestrator's client, then an unload: it must
    end. Cancelling each call just after its final response (the LLM bench's client did,
    by closing its channel) left the instance unable to ever unload (Triton 2.51)."""
    import asyncio

    from orchestrator.triton.llm_client import LLMClient

    def chat(i: int) -> list[dict]:
        return [{"role": "user", "content": f"Ticket {i}: my card has not arrived."}]

    async def traffic() -> None:
        llm = LLMClient(llm_server.settings.grpc_url)
        try:
            await llm.generate(chat(0), max_tokens=32, ignore_eos=True)
            await asyncio.gather(
                *(llm.generate(chat(i), max_tokens=32, ignore_eos=True) for i in range(1, 17))
            )
        finally:
            await llm.close()

    asyncio.run(traffic())
    llm_server.client.unload_model("llm")
    _wait_until_unloaded_then_reload(llm_server, "llm did not unload after its streams ended")


def test_unloading_during_streams_ends_them_with_an_error_not_a_hang(llm_server):
    url = llm_server.settings.grpc_url
    streams = [_send(url, max_tokens=300, ignore_eos=True) for _ in range(3)]
    try:
        deadline = time.monotonic() + 60
        while not all(s.events for s in streams):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        llm_server.client.unload_model("llm")
        for i, stream in enumerate(streams):
            assert stream.finished.wait(30), f"stream {i} hung"
    finally:
        for stream in streams:
            stream.close()
    try:
        assert all("unloading" in (s.error or "") for s in streams), [s.error for s in streams]
        assert llm_server.client.is_server_live()
    finally:
        _wait_until_unloaded_then_reload(llm_server, "the llm's stub process is still running")


def _wait_until_unloaded_then_reload(server, message: str, timeout_s: float = 60) -> None:
    """Unloading really ends: the model's process exits, its memory back to the host. The
    model is loaded again either way, for the tests after."""
    try:
        deadline = time.monotonic() + timeout_s
        while _stub_processes(server):
            assert time.monotonic() < deadline, message
            time.sleep(0.2)
    finally:
        server.client.load_model("llm", config=server.config)
    assert server.client.is_model_ready("llm")


DRAFT_INTENTS = ("card_arrival", "lost_or_stolen_card", "exchange_charge", "pin_blocked")


def test_drafts_pass_the_draft_checks_and_fall_back_when_the_llm_is_gone(llm_server):
    import asyncio

    from loadtest.bench.drafts import load_tickets, score
    from orchestrator.services.drafts import load_notes, write_draft
    from orchestrator.triton.llm_client import LLMClient

    llm = LLMClient(llm_server.settings.grpc_url)
    sources = []
    for ticket in [t for t in load_tickets() if t.intent in DRAFT_INTENTS]:
        draft = asyncio.run(write_draft(llm, ticket.intent, ticket.subject, ticket.body, seed=1))
        assert score(ticket, draft.text).passed, (ticket.intent, draft.text)
        sources.append(draft.source)
    # the model's own opening sentence passed its checks in all but one draft at most
    assert sources.count("llm") >= len(sources) - 1, sources
    llm_server.client.unload_model("llm")
    try:
        deadline = time.monotonic() + 30
        while llm_server.client.is_model_ready("llm") and time.monotonic() < deadline:
            time.sleep(0.1)
        draft = asyncio.run(write_draft(llm, "card_arrival", "Card", "Where is my card?"))
        assert draft.source == "fallback"
        assert load_notes()["card_arrival"].note in draft.text
    finally:
        llm_server.client.load_model("llm", config=llm_server.config)
