"""Chat through the orchestrator's app and a real Triton serving the mock LLM: the streaming
protocol, usage, limits and every failure path, deterministic and in seconds.

The app runs in process (no uvicorn); Triton is real (tests/utils/mock_triton.py); only the
model's text is fake. The real model's answers are tested in test_chat.py beside it (slow).
"""

import asyncio
import json

import openai
import pytest
from fastapi.testclient import TestClient

from orchestrator.app import create_app
from orchestrator.settings import OrchestratorSettings
from orchestrator.triton.llm_client import Generation, LLMClient, LLMTimeout, LLMUnavailable
from tests.utils.mock_triton import mock_directive
from tests.utils.orchestrator import ADMIN_KEY, error_of, new_key

REPLY = "Your card is on its way and should arrive within three days."
WORDS = REPLY.split()


@pytest.fixture(scope="module")
def app_client(mock_triton, tmp_path_factory):
    settings = OrchestratorSettings(
        database_url=f"sqlite:///{tmp_path_factory.mktemp('db') / 'chat.db'}",
        admin_key=ADMIN_KEY,
        worker_in_process=False,
        chat_timeout_s=2.0,
    )
    with TestClient(create_app(settings, mock_triton.settings)) as client:
        yield client


@pytest.fixture(scope="module")
def chat_key(app_client) -> str:
    return new_key(app_client, ["chat"], "mock chat tenant")


@pytest.fixture(scope="module")
def openai_client(app_client, chat_key):
    return openai.OpenAI(
        base_url="http://testserver/v1", api_key=chat_key, http_client=app_client, max_retries=0
    )


def _messages(reply: str = REPLY, **options) -> list[dict]:
    return [{"role": "user", "content": mock_directive(reply, **options)}]


def _sse(response) -> list[str]:
    """The `data:` payloads of an SSE response, in order."""
    return [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]


def test_a_streamed_chat_is_openai_shaped_chunk_by_chunk(openai_client):
    chunks = list(
        openai_client.chat.completions.create(
            model="llm",
            messages=_messages(),
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    pieces = [
        c.choices[0].delta.content for c in chunks[1:] if c.choices and c.choices[0].delta.content
    ]
    assert pieces == [WORDS[0]] + [" " + w for w in WORDS[1:]]  # one chunk per model response
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    usage = chunks[-1].usage
    assert chunks[-1].choices == [] and usage.completion_tokens == len(WORDS)
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert len({c.id for c in chunks}) == 1


def test_the_stream_ends_with_done_and_usage_is_left_out_when_asked(app_client, chat_key):
    def events(**extra) -> list[str]:
        body = {"model": "llm", "messages": _messages(), "stream": True, **extra}
        response = app_client.post(
            "/v1/chat/completions", json=body, headers={"X-API-Key": chat_key}
        )
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        return _sse(response)

    default = events()
    assert default[-1] == "[DONE]" and json.loads(default[-2])["usage"]["completion_tokens"]
    without = events(stream_options={"include_usage": False})
    assert without[-1] == "[DONE]" and "usage" not in json.loads(without[-2])
    assert json.loads(without[-2])["choices"][0]["finish_reason"] == "stop"


def test_a_plain_completion_joins_the_text_and_counts_usage(openai_client):
    completion = openai_client.chat.completions.create(model="llm", messages=_messages())
    assert completion.choices[0].message.content == REPLY
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.completion_tokens == len(WORDS)


def test_max_tokens_and_stop_reach_the_model(openai_client):
    limited = openai_client.chat.completions.create(model="llm", messages=_messages(), max_tokens=3)
    assert limited.choices[0].message.content == " ".join(WORDS[:3])
    assert limited.choices[0].finish_reason == "length"
    stopped = openai_client.chat.completions.create(
        model="llm", messages=_messages(), stop=["arrive"]
    )
    assert stopped.choices[0].message.content == REPLY[: REPLY.index(" arrive")]


def test_ignore_eos_reaches_the_model_and_a_stream_then_has_exactly_max_tokens(openai_client):
    """The vLLM-style extension the LLM benchmark sends through the openai client."""
    asked = len(WORDS) + 5

    def usage(**extra):
        chunks = openai_client.chat.completions.create(
            model="llm", messages=_messages(), max_tokens=asked, stream=True, **extra
        )
        return list(chunks)[-1].usage.completion_tokens

    assert usage() == len(WORDS)  # the reply ends where its words do
    assert usage(extra_body={"ignore_eos": True}) == asked


def test_a_model_failing_before_the_first_token_is_a_503_with_retry_after(app_client, chat_key):
    for stream in (False, True):
        response = app_client.post(
            "/v1/chat/completions",
            json={"model": "llm", "messages": _messages(fail_after=0), "stream": stream},
            headers={"X-API-Key": chat_key},
        )
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"]
        assert error_of(response)["type"] == "service_unavailable"


def test_a_model_failing_mid_stream_ends_it_with_an_error_event_and_keeps_the_history(
    app_client, chat_key
):
    headers = {"X-API-Key": chat_key}
    response = app_client.post(
        "/v1/chat/completions",
        json={"model": "llm", "messages": _messages(fail_after=2), "stream": True},
        headers=headers,
    )
    assert response.status_code == 200  # the headers had gone out with the first chunk
    assert _sse(response)[-1] == "[DONE]"  # the error event, then the end, as for any stream
    events = [json.loads(e) for e in _sse(response) if e != "[DONE]"]
    contents = [c["choices"][0]["delta"].get("content") for c in events if c.get("choices")]
    assert [c for c in contents if c] == [WORDS[0], " " + WORDS[1]]
    assert "mock failure after 2 pieces" in events[-1]["error"]["message"]
    history = app_client.get("/v1/chat/history", headers=headers).json()["data"]
    assert history[0]["finish_reason"] == "error"
    assert history[0]["reply"] == " ".join(WORDS[:2])


def test_a_tenant_over_its_llm_token_budget_gets_429_and_unused_tokens_come_back(
    mock_triton, tmp_path
):
    settings = OrchestratorSettings(
        database_url=f"sqlite:///{tmp_path / 'quota.db'}",
        admin_key=ADMIN_KEY,
        worker_in_process=False,
        tenant_llm_tokens_per_minute=100,
    )
    with TestClient(create_app(settings, mock_triton.settings)) as client:
        headers = {"X-API-Key": new_key(client, ["chat"], "quota tenant")}

        def ask(max_tokens: int):
            body = {"model": "llm", "messages": _messages(), "max_tokens": max_tokens}
            return client.post("/v1/chat/completions", json=body, headers=headers)

        # Each reserves 60 of the 100 tokens but spends only the reply's 11: the rest returns.
        for _ in range(4):
            assert ask(60).status_code == 200
        refused = ask(100)  # then one that needs the whole budget at once
        assert refused.status_code == 429, refused.text
        assert error_of(refused)["code"] == "tenant_llm_tokens"
        assert int(refused.headers["retry-after"]) >= 1


def test_a_model_too_slow_to_answer_is_a_503(app_client, chat_key):
    response = app_client.post(
        "/v1/chat/completions",
        json={"model": "llm", "messages": _messages("slow", delay_ms=3000)},
        headers={"X-API-Key": chat_key},
    )
    assert response.status_code == 503
    assert "in time" in error_of(response)["message"]


def test_ttft_tpot_and_tokens_are_exported_per_source(openai_client, app_client):
    list(openai_client.chat.completions.create(model="llm", messages=_messages(), stream=True))
    text = app_client.get("/metrics").text
    assert 'support_generation_ttft_seconds_count{source="chat"}' in text
    assert 'support_generation_tpot_seconds_count{source="chat"}' in text
    assert 'support_generation_tokens_total{kind="completion",source="chat"}' in text


# ---- the gRPC client the worker and the chat route share -------------------------------


def test_llm_client_streams_pieces_then_the_totals(mock_triton):
    async def collect():
        client = LLMClient(mock_triton.settings.grpc_url)
        return [item async for item in client.stream(_messages(repeat=2), max_tokens=64)]

    items = asyncio.run(collect())
    assert "".join(items[:-1]) == " ".join(WORDS * 2)
    assert items[-1] == Generation(
        " ".join(WORDS * 2), "stop", items[-1].prompt_tokens, 2 * len(WORDS), model="llm"
    )


def test_llm_client_reports_failures_and_timeouts(mock_triton):
    client = LLMClient(mock_triton.settings.grpc_url)
    with pytest.raises(LLMUnavailable, match="mock failure after 0 pieces"):
        asyncio.run(client.generate(_messages(fail_after=0), max_tokens=8))
    with pytest.raises(LLMTimeout):
        asyncio.run(client.generate(_messages(delay_ms=2000), max_tokens=8, timeout_s=0.3))
    missing = LLMClient(mock_triton.settings.grpc_url, model="no_such_model")
    with pytest.raises(LLMUnavailable):
        asyncio.run(missing.generate(_messages(), max_tokens=8))
