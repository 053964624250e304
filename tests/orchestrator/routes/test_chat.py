"""OpenAI-compatible chat through the official `openai` client, against the real LLM on Triton."""

import time

import httpx
import openai
import pytest

from tests.utils.orchestrator import error_of, new_key

MESSAGES = [{"role": "user", "content": "Say hello to a customer in one short sentence."}]


@pytest.fixture(scope="module")
def chat_key(api):
    return new_key(api, ["chat"], "chat tenant")


@pytest.fixture(scope="module")
def client(api, chat_key):
    return openai.OpenAI(
        base_url=str(api.base_url).rstrip("/") + "/v1", api_key=chat_key, max_retries=0
    )


def test_models_lists_the_llm(client):
    assert [m.id for m in client.models.list()] == ["llm"]


def test_a_plain_completion_has_text_and_usage(client):
    completion = client.chat.completions.create(
        model="llm", messages=MESSAGES, max_tokens=16, temperature=0, seed=7
    )
    assert completion.object == "chat.completion"
    choice = completion.choices[0]
    assert choice.message.role == "assistant" and choice.message.content.strip()
    assert choice.finish_reason in ("stop", "length")
    usage = completion.usage
    assert usage.prompt_tokens > 5 and 0 < usage.completion_tokens <= 16
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_a_streamed_completion_ends_with_a_usage_chunk(client):
    stream = client.chat.completions.create(
        model="llm",
        messages=MESSAGES,
        max_tokens=16,
        temperature=0,
        seed=7,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] in ("stop", "length")
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    # No exact comparison with a plain answer: with the prefix cache, and with whatever else
    # shares the batch, a greedy answer may tip a near tie the other way (README, "The LLM").
    plain = client.chat.completions.create(
        model="llm", messages=MESSAGES, max_tokens=16, temperature=0, seed=7
    )
    assert plain.choices[0].message.content.strip() and plain.usage.completion_tokens > 0


def test_stop_sequences_and_sampling_settings_are_honoured(client):
    completion = client.chat.completions.create(
        model="llm", messages=MESSAGES, max_tokens=32, temperature=0.8, top_p=0.9, seed=3,
        stop=["."], frequency_penalty=0.5,
    )  # fmt: skip
    assert "." not in completion.choices[0].message.content


def test_every_exchange_is_stored_as_history_per_tenant(api, client, chat_key):
    client.chat.completions.create(model="llm", messages=MESSAGES, max_tokens=8)
    history = api.get("/v1/chat/history", headers={"X-API-Key": chat_key}).json()["data"]
    assert history and history[0]["messages"] == MESSAGES and history[0]["reply"]
    other = new_key(api, ["chat"], "other chat tenant")
    assert api.get("/v1/chat/history", headers={"X-API-Key": other}).json()["data"] == []


def test_chat_errors_are_openai_shaped(api, client, chat_key):
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    with pytest.raises(openai.UnprocessableEntityError):
        client.chat.completions.create(model="llm", messages=MESSAGES, n=2)
    headers = {"X-API-Key": chat_key}
    for body, param in (
        ({"model": "llm"}, "messages"),
        ({"model": "llm", "messages": [{"role": "robot", "content": "hi"}]}, "messages.0.role"),
        ({"model": "llm", "messages": MESSAGES, "temperature": "hot"}, "temperature"),
        ({"model": "llm", "messages": MESSAGES, "tools": []}, "tools"),
    ):
        response = api.post("/v1/chat/completions", json=body, headers=headers)
        assert response.status_code == 422, response.text
        assert error_of(response)["param"] == param
    no_chat = new_key(api, ["tickets:read"], "no chat scope")
    denied = api.post(
        "/v1/chat/completions", json={"model": "llm", "messages": MESSAGES},
        headers={"X-API-Key": no_chat},
    )  # fmt: skip
    assert denied.status_code == 403


def test_ttft_and_tpot_are_exported(api, client):
    list(client.chat.completions.create(model="llm", messages=MESSAGES, max_tokens=8, stream=True))
    text = api.get("/metrics").text
    assert 'support_generation_ttft_seconds_count{source="chat"}' in text
    assert 'support_generation_tpot_seconds_count{source="chat"}' in text
    assert 'support_generation_tokens_total{kind="completion",source="chat"}' in text


def _counting_client(api, chat_key, sent: list) -> openai.OpenAI:
    """The official client with its default retries, counting the requests it sends."""
    http = httpx.Client(event_hooks={"request": [sent.append]})
    return openai.OpenAI(
        base_url=str(api.base_url).rstrip("/") + "/v1", api_key=chat_key, http_client=http
    )


@pytest.mark.parametrize(
    ("messages", "max_tokens"),
    [
        # longer than the whole context (8192 tokens)
        ([{"role": "user", "content": "word " * 5000}] * 2, None),
        # fits, but not with the reply asked for
        ([{"role": "user", "content": "word " * 4500}], 4096),
    ],
    ids=["prompt", "prompt-plus-max-tokens"],
)
def test_a_request_longer_than_the_context_is_a_400_that_clients_do_not_retry(
    api, chat_key, messages, max_tokens
):
    sent: list = []
    client = _counting_client(api, chat_key, sent)
    extra = {} if max_tokens is None else {"max_tokens": max_tokens}
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model="llm", messages=messages, **extra)
    assert len(sent) == 1  # a 503 would have been retried twice
    error = raised.value.body
    assert error["code"] == "context_length_exceeded"
    assert error["type"] == "invalid_request_error" and error["param"] == "messages"
    assert "the context holds 8192" in error["message"]
    with pytest.raises(openai.BadRequestError):  # the same answer before a stream starts
        client.chat.completions.create(model="llm", messages=messages, stream=True, **extra)


def test_a_stream_the_client_leaves_is_stored_as_cancelled(api, chat_key):
    ask = [{"role": "user", "content": "Write a long story about a lost bank card."}]
    headers = {"X-API-Key": chat_key}
    body = {"model": "llm", "messages": ask, "max_tokens": 400, "stream": True}
    with api.stream("POST", "/v1/chat/completions", json=body, headers=headers) as response:
        assert response.status_code == 200
        lines = response.iter_lines()
        for _ in range(6):  # a few chunks, then hang up mid-answer
            next(lines)
    deadline = time.monotonic() + 30
    while True:
        history = api.get("/v1/chat/history", headers=headers).json()["data"]
        stored = [h for h in history if h["messages"] == ask]
        if stored or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert stored and stored[0]["finish_reason"] == "cancelled", history[:2]
    assert stored[0]["reply"]  # what had been sent before the client left
