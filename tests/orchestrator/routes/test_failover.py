"""Failover end to end: with the primary LLM unloaded through the control plane, chat and
drafts are answered by the fallback model and say so; after it is loaded again, the breaker
probes it and returns to it.

Triton is real and serves two models, `llm` and `llm_fallback`, each with its committed
config.pbtxt and the mock LLM's code (tests/utils/mock_triton.py): fast, and what each model
really executed is read from Triton's own statistics. The orchestrator's app runs in process
with its worker, so that the breaker's clock can be swapped for one the test advances.
"""

import json
from itertools import count

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update

from contracts.models import LLM_FALLBACK_MODEL, LLM_MODEL
from orchestrator.app import create_app
from orchestrator.db.models import Ticket
from orchestrator.db.session import make_engine
from orchestrator.settings import OrchestratorSettings
from orchestrator.triton.launcher import TritonServer
from tests.utils.jobs import enqueue
from tests.utils.mock_triton import mock_triton_settings
from tests.utils.orchestrator import ADMIN_KEY, admin, new_key, new_tenant, wait_until

REPLY = "Your new card is on its way and should arrive within three days."
TENANT = "failover tenant"
FAILURES, COOLDOWN_S = 2, 60.0
CLOSED, OPEN = 0, 2


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def two_llms(tmp_path_factory):
    work = tmp_path_factory.mktemp("failover-triton")
    with TritonServer(mock_triton_settings(work, (LLM_MODEL, LLM_FALLBACK_MODEL))) as server:
        yield server


@pytest.fixture(scope="module")
def stack(two_llms, tmp_path_factory):
    database = f"sqlite:///{tmp_path_factory.mktemp('db') / 'failover.db'}"
    settings = OrchestratorSettings(
        database_url=database,
        admin_key=ADMIN_KEY,
        llm_breaker_failures=FAILURES,
        llm_breaker_cooldown_s=COOLDOWN_S,
        job_backoff_base_s=0.2,
        job_backoff_max_s=1.0,
        worker_poll_s=0.1,
    )
    clock = Clock()
    with TestClient(create_app(settings, two_llms.settings)) as client:
        client.app.state.llm.breaker.clock = clock
        engine = make_engine(database)
        yield client, clock, engine
        engine.dispose()


class Calls:
    """Requests each model really executed, from Triton's statistics (an unloaded model has
    none, and a loaded one counts from zero again)."""

    def __init__(self, triton: TritonServer):
        self.url = f"http://{triton.settings.http_url}/v2/models"
        self.start = self.now()

    def now(self) -> dict[str, int]:
        counts = {}
        for model in (LLM_MODEL, LLM_FALLBACK_MODEL):
            answer = httpx.get(f"{self.url}/{model}/stats").json()
            loaded = answer.get("model_stats", [])
            counts[model] = sum(int(s["inference_stats"]["success"]["count"]) for s in loaded)
        return counts

    def since_last(self) -> dict[str, int]:
        now = self.now()
        # Less than before: unloaded (none now) or loaded again (counting from zero)
        new = {m: now[m] - self.start[m] if now[m] >= self.start[m] else now[m] for m in now}
        self.start = now
        return new


def test_the_fallback_answers_while_the_primary_is_unloaded_then_the_breaker_returns(
    stack, two_llms
):
    client, clock, engine = stack
    tenant = new_tenant(client, TENANT)["id"]
    chat_key = {"X-API-Key": new_key(client, ["chat"], tenant)}
    ticket_key = {"X-API-Key": new_key(client, ["tickets:write", "tickets:read"], tenant)}
    calls = Calls(two_llms)
    tickets = count()

    def chat(stream: bool = False) -> str:
        body = {"model": "llm", "messages": [{"role": "user", "content": REPLY}]}
        response = client.post(
            "/v1/chat/completions", json={**body, "stream": stream}, headers=chat_key
        )
        assert response.status_code == 200, response.text
        if not stream:
            assert response.json()["choices"][0]["message"]["content"] == REPLY
            return response.json()["model"]
        chunks = [json.loads(line[6:]) for line in response.text.splitlines()
                  if line.startswith("data: {")]  # fmt: skip
        text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
        assert text == REPLY and "error" not in chunks[-1]
        (model,) = {chunk["model"] for chunk in chunks}  # every chunk names the same model
        return model

    def drafts() -> list[str]:
        """The sources of a draft written again through the API, and of one the worker wrote."""
        (ticket,) = enqueue(engine, TENANT, 1, intent="card_arrival")
        with engine.begin() as connection:  # the rest of a triage, for the API to show it
            triaged = {"confidence": 0.9, "type": "request", "top": []}
            connection.execute(update(Ticket).where(Ticket.id == ticket).values(**triaged))

        def worker_draft():
            answer = client.get(f"/v1/tickets/{ticket}", headers=ticket_key).json()
            return answer["draft"]

        written = wait_until(worker_draft, 30, what=f"the worker's draft #{next(tickets)}")
        again = client.post(f"/v1/tickets/{ticket}/draft", headers=ticket_key)
        assert again.status_code == 200, again.text
        return [written["source"], again.json()["draft"]["source"]]

    def sample(name: str, **labels: str) -> float:
        text = client.get("/metrics").text
        for family in text_string_to_metric_families(text):
            for found in family.samples:
                if found.name == name and found.labels == labels:
                    return found.value
        return 0.0

    def failovers(reason: str) -> float:
        names = {"primary": LLM_MODEL, "fallback": LLM_FALLBACK_MODEL}
        return sample("support_llm_failovers_total", **names, reason=reason)

    def breaker() -> float:
        return sample("support_llm_breaker_state", model=LLM_MODEL)

    # Both models up: the primary answers.
    assert chat() == "llm" and chat(stream=True) == "llm"
    assert drafts() == ["llm", "llm"]
    assert calls.since_last() == {LLM_MODEL: 4, LLM_FALLBACK_MODEL: 0}
    assert breaker() == CLOSED

    # The primary unloaded through the control plane: the fallback answers and says so.
    unloaded = admin(client, "POST", "/v1/model/unload", json={"model": LLM_MODEL})
    assert unloaded.status_code == 200 and unloaded.json()["result"] == "ok", unloaded.text
    assert chat() == "llm_fallback"
    assert chat(stream=True) == "llm_fallback"
    assert failovers("unavailable") == FAILURES and breaker() == OPEN
    assert drafts() == ["llm_fallback", "llm_fallback"]  # open: straight to the fallback
    assert failovers("breaker_open") == 2
    assert calls.since_last() == {LLM_MODEL: 0, LLM_FALLBACK_MODEL: 4}

    # After the cooldown the breaker probes: Triton says the primary is not ready, so the
    # request is not sent to it, and the breaker stays open for another cooldown.
    clock.now += COOLDOWN_S
    assert chat() == "llm_fallback" and breaker() == OPEN

    # Loaded again: the fallback keeps answering until the breaker probes the primary ...
    loaded = admin(client, "POST", "/v1/model/load", json={"model": LLM_MODEL})
    assert loaded.status_code == 200 and loaded.json()["result"] == "ok", loaded.text
    assert chat() == "llm_fallback"
    assert calls.since_last() == {LLM_MODEL: 0, LLM_FALLBACK_MODEL: 2}
    # ... and after the cooldown the probe reaches it, it answers, and the breaker closes.
    clock.now += COOLDOWN_S
    assert chat() == "llm" and breaker() == CLOSED
    assert chat(stream=True) == "llm"
    assert drafts() == ["llm", "llm"]
    assert calls.since_last() == {LLM_MODEL: 4, LLM_FALLBACK_MODEL: 0}
    history = client.get("/v1/chat/history?limit=20", headers=chat_key).json()["data"]
    assert [h["model"] for h in history[:3]] == ["llm", "llm", "llm_fallback"]
