"""Locust users for the orchestrator's public routes and for Triton directly.

Pick users by class name (`locust -f loadtest/locustfile.py TriageUser ChatUser`) or by tag
(`--tags tickets chat`; `--tags orchestrator` leaves out the Triton-direct user):

| class            | tags                  | what it does                                         |
| TicketUser       | tickets, orchestrator | POST /v1/tickets then polls; POST ?wait=true         |
| TriageUser       | triage, orchestrator  | POST /v1/triage with 1 text, or a batch of up to 64  |
| ChatUser         | chat, orchestrator    | streamed /v1/chat/completions; TTFT and TPOT entries |
| ModelStatusUser  | admin, orchestrator   | GET /v1/model/status (needs an admin key)            |
| TritonTriageUser | triton                | the `ticket_triage` ensemble over Triton's HTTP API  |

Settings (environment): `LOADTEST_API_KEY` (sent as X-API-Key; it needs the scopes of the
classes picked: tickets:write and tickets:read, chat, admin), `LOADTEST_TRITON_URL` (Triton's
HTTP address, default 127.0.0.1:8000), `LOADTEST_TICKET_TIMEOUT_S` (how long a ticket may take
to be done, default 120), `LOADTEST_CHAT_MAX_TOKENS` (default 32). Locust's `--host` is the
orchestrator's URL. Entries of our own (not plain HTTP) are fired through Locust's request
event: `TICKET` (submission to done), `SSE` (`chat TTFT`, `chat TPOT`, `chat stream`) and
`TRITON` (ensemble calls).
"""

import json
import os
import random
import time

import numpy as np
from locust import HttpUser, User, between, tag, task
from locust.clients import ResponseContextManager

from contracts.models import LLM_MODEL
from loadtest.sse import DONE, delta_text, sse_data
from loadtest.texts import ticket_texts

TEXTS = ticket_texts()
TRIAGE_FIELDS = {"intent", "confidence", "department", "type", "priority", "top"}
ENSEMBLE_OUTPUTS = ("intent", "confidence", "top_intents", "top_scores")
MAX_BATCH = 64
SYSTEM_PROMPT = "You are a helpful customer-support agent at a bank. Reply briefly."


def _setting(name: str, default: str) -> str:
    return os.environ.get(name, default)


def triton_url() -> str:
    """`host:port` as tritonclient wants it; a scheme given by habit is dropped."""
    url = _setting("LOADTEST_TRITON_URL", "127.0.0.1:8000")
    return url.split("://", 1)[-1].rstrip("/")


def _milliseconds_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000


class ApiUser(HttpUser):
    """Sends the API key and checks answers: a request is failed with the reason, never raised."""

    abstract = True

    def on_start(self) -> None:
        self.client.headers["X-API-Key"] = os.environ.get("LOADTEST_API_KEY", "")

    def expect_json(self, response: ResponseContextManager, *statuses: int) -> dict | None:
        """The JSON body when the status is one of `statuses`; else the request is failed."""
        if response.status_code not in statuses:
            hint = " (is LOADTEST_API_KEY a valid key?)" if response.status_code == 401 else ""
            response.failure(f"HTTP {response.status_code}{hint}: {response.text[:200]}")
            return None
        try:
            return response.json()
        except ValueError:
            response.failure(f"not JSON: {response.text[:200]}")
            return None

    def report(self, request_type: str, name: str, started: float, error: str | None) -> None:
        """An entry of our own in Locust's statistics, timed from `started` (perf_counter)."""
        fire(self.environment, request_type, name, _milliseconds_since(started), error)


def fire(environment, request_type: str, name: str, ms: float, error=None, length=0) -> None:
    """One sample of an entry that is not a plain HTTP request (Locust's request event)."""
    environment.events.request.fire(
        request_type=request_type,
        name=name,
        response_time=ms,
        response_length=length,
        exception=RuntimeError(error) if error else None,
        context={},
    )


class TicketUser(ApiUser):
    """A web widget filing tickets, then watching them until triage and draft are done."""

    weight = 4
    wait_time = between(1, 3)
    poll_interval_s = 0.5

    def _new_ticket(self) -> dict:
        text = random.choice(TEXTS)  # nosec B311  # which load-test text to send: nothing secret
        return {"subject": text[:60], "body": text, "channel": "web"}

    @tag("tickets", "orchestrator")
    @task(2)
    def submit_and_poll(self) -> None:
        started = time.perf_counter()
        with self.client.post(
            "/v1/tickets", json=self._new_ticket(), name="/v1/tickets", catch_response=True
        ) as response:
            body = self.expect_json(response, 202)
            if body is None:
                return
            if not {"id", "status"} <= body.keys():
                response.failure(f"202 without id and status: {body}")
                return
        self._follow(body["id"], started, "submit → done")

    @tag("tickets", "orchestrator")
    @task(1)
    def submit_and_wait(self) -> None:
        started = time.perf_counter()
        with self.client.post(
            "/v1/tickets?wait=true",
            json=self._new_ticket(),
            name="/v1/tickets?wait=true",
            catch_response=True,
        ) as response:
            body = self.expect_json(response, 201, 202)
            if body is None:
                return
        if response.status_code == 202:  # it outlasted the server's wait: poll like the rest
            self._follow(body.get("id"), started, "wait=true → done")
            return
        self.report("TICKET", "wait=true → done", started, _ticket_error(body))

    def _follow(self, ticket_id, started: float, name: str) -> None:
        """Polls the ticket until done or failed, then reports the whole wait as one entry."""
        timeout_s = float(_setting("LOADTEST_TICKET_TIMEOUT_S", "120"))
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            time.sleep(self.poll_interval_s)  # gevent-patched: other users run meanwhile
            with self.client.get(
                f"/v1/tickets/{ticket_id}", name="/v1/tickets/{id}", catch_response=True
            ) as response:
                body = self.expect_json(response, 200)
            if body is None:
                self.report("TICKET", name, started, "polling failed")
                return
            if body.get("status") in ("done", "failed"):
                self.report("TICKET", name, started, _ticket_error(body))
                return
        self.report("TICKET", name, started, f"not done after {timeout_s:.0f} s")


def _ticket_error(ticket: dict) -> str | None:
    status = ticket.get("status")
    if status == "done":
        return None
    return f"ticket {ticket.get('id')} ended {status}: {ticket.get('error') or ticket}"[:300]


class TriageUser(ApiUser):
    """A CRM sync classifying tickets: mostly one at a time, sometimes a batch."""

    weight = 2
    wait_time = between(0.1, 0.5)

    def _triage(self, texts: list[str], name: str) -> None:
        with self.client.post(
            "/v1/triage", json={"texts": texts}, name=name, catch_response=True
        ) as response:
            body = self.expect_json(response, 200)
            if body is None:
                return
            results = body.get("results", [])
            if len(results) != len(texts):
                response.failure(f"{len(results)} results for {len(texts)} texts")
            elif not all(r.keys() >= TRIAGE_FIELDS for r in results):
                response.failure(f"a result lacks one of {sorted(TRIAGE_FIELDS)}: {results[0]}")

    @tag("triage", "orchestrator")
    @task(3)
    def one_text(self) -> None:
        self._triage([random.choice(TEXTS)], "/v1/triage [1 text]")  # nosec B311  # which load-test text to send: nothing secret

    @tag("triage", "orchestrator")
    @task(1)
    def batch(self) -> None:
        texts = random.sample(TEXTS, random.randint(2, min(MAX_BATCH, len(TEXTS))))  # nosec B311  # which load-test text to send: nothing secret
        self._triage(texts, f"/v1/triage [2-{MAX_BATCH} texts]")


class ChatUser(ApiUser):
    """An agent's assistant streaming replies; TTFT and TPOT become entries of their own.

    Locust's own entry for the POST is the time to the response headers (the body streams
    after it); `chat stream` is the whole stream, `chat TTFT` the first content, `chat TPOT`
    the mean time per further output token.
    """

    weight = 3
    wait_time = between(1, 3)

    @tag("chat", "orchestrator")
    @task
    def streamed_reply(self) -> None:
        body = {
            "model": LLM_MODEL,
            "messages": [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": random.choice(TEXTS)},  # nosec B311  # which load-test text to send: nothing secret
            ],
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_tokens": int(_setting("LOADTEST_CHAT_MAX_TOKENS", "32")),
        }
        started = time.perf_counter()
        with self.client.post(
            "/v1/chat/completions",
            json=body,
            name="/v1/chat/completions",
            stream=True,
            catch_response=True,
            timeout=300,
        ) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}: {response.text[:200]}")
                return
            timing = read_sse(response.iter_lines(decode_unicode=True))
            if timing.error:
                response.failure(timing.error)
        self._report_timing(timing, started)

    def _report_timing(self, timing: "StreamTiming", started: float) -> None:
        self.report("SSE", "chat stream", started, timing.error)
        if timing.first_at is None:
            return
        fire(self.environment, "SSE", "chat TTFT", (timing.first_at - started) * 1000)
        if timing.tokens > 1:
            tpot_ms = (timing.last_at - timing.first_at) * 1000 / (timing.tokens - 1)
            fire(self.environment, "SSE", "chat TPOT", tpot_ms, length=timing.tokens)


class StreamTiming:
    """What one SSE stream showed: content arrival times, token count, an error if any."""

    def __init__(self) -> None:
        self.first_at: float | None = None
        self.last_at: float | None = None
        self.content_chunks = 0
        self.usage_tokens: int | None = None
        self.done = False
        self.error: str | None = None

    @property
    def tokens(self) -> int:
        """The server's count (usage) where it sent one; else one token per content chunk."""
        return self.usage_tokens if self.usage_tokens is not None else self.content_chunks


def read_sse(lines) -> StreamTiming:
    """Reads `data:` lines until `[DONE]`, timing each piece of content as it arrives."""
    timing = StreamTiming()
    for line in lines:
        data = sse_data(line)
        if data is None:
            continue
        if data == DONE:
            timing.done = True
            break
        _read_chunk(json.loads(data), timing)
        if timing.error:
            return timing
    if not timing.done:
        timing.error = "the stream ended without data: [DONE]"
    elif timing.first_at is None:
        timing.error = "the stream carried no content"
    return timing


def _read_chunk(chunk: dict, timing: StreamTiming) -> None:
    if "error" in chunk:
        timing.error = f"error in stream: {chunk['error']}"[:300]
        return
    if chunk.get("usage"):
        timing.usage_tokens = chunk["usage"].get("completion_tokens")
    if delta_text(chunk):
        now = time.perf_counter()
        timing.first_at = timing.first_at or now
        timing.last_at = now
        timing.content_chunks += 1


class ModelStatusUser(ApiUser):
    """An MLOps dashboard refreshing the model list (admin scope)."""

    weight = 1
    wait_time = between(2, 5)

    @tag("admin", "orchestrator")
    @task
    def model_status(self) -> None:
        with self.client.get(
            "/v1/model/status", name="/v1/model/status", catch_response=True
        ) as response:
            body = self.expect_json(response, 200)
            if body is None:
                return
            models = body.get("models")
            wanted = {"name", "version", "state", "reason"}
            if not isinstance(models, list) or not models:
                response.failure(f"no models listed: {body}")
            elif not all(wanted <= m.keys() for m in models):
                response.failure(f"a model lacks one of {sorted(wanted)}: {models[0]}")


class TritonTriageUser(User):
    """Calls Triton's `ticket_triage` ensemble directly: Triton's load without the orchestrator.

    tritonclient.http runs on geventhttpclient, so it yields to other Locust users like
    Locust's own clients do.
    """

    weight = 1
    wait_time = between(0.1, 0.5)

    def on_start(self) -> None:
        import tritonclient.http as httpclient

        self.http = httpclient
        self.triton = httpclient.InferenceServerClient(
            triton_url(), concurrency=1, network_timeout=60
        )

    def on_stop(self) -> None:
        self.triton.close()

    def _infer(self, texts: list[str], name: str) -> None:
        tensor = self.http.InferInput("text", [len(texts), 1], "BYTES")
        tensor.set_data_from_numpy(np.array([[t.encode()] for t in texts], dtype=object))
        outputs = [self.http.InferRequestedOutput(n) for n in ENSEMBLE_OUTPUTS]
        started, error = time.perf_counter(), None
        try:
            result = self.triton.infer("ticket_triage", [tensor], outputs=outputs)
            if result.as_numpy("intent").shape[0] != len(texts):
                error = f"{result.as_numpy('intent').shape[0]} intents for {len(texts)} texts"
        except Exception as exception:  # every failure is reported, none stops the user
            error = f"{type(exception).__name__}: {exception}"[:300]
        fire(self.environment, "TRITON", name, _milliseconds_since(started), error, len(texts))

    @tag("triton")
    @task(3)
    def one_text(self) -> None:
        self._infer([random.choice(TEXTS)], "ticket_triage [1 text]")  # nosec B311  # which load-test text to send: nothing secret

    @tag("triton")
    @task(1)
    def batch(self) -> None:
        texts = random.sample(TEXTS, random.randint(2, min(MAX_BATCH, len(TEXTS))))  # nosec B311  # which load-test text to send: nothing secret
        self._infer(texts, f"ticket_triage [2-{MAX_BATCH} texts]")
