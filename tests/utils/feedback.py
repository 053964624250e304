"""The orchestrator's app in process, without Triton or a worker, and triage stored by hand:
corrections and their provenance are tested in a second, on SQLite and PostgreSQL."""

from collections.abc import Iterator
from contextlib import contextmanager

from fastapi.testclient import TestClient

from contracts.registry import RegistrySettings
from orchestrator.app import create_app
from orchestrator.db.models import Ticket
from orchestrator.services.tickets import store_triage
from orchestrator.services.triage import ticket_text, triage_of
from orchestrator.settings import OrchestratorSettings, TritonSettings
from orchestrator.triton.triage_client import Prediction
from tests.utils.orchestrator import ADMIN_KEY, new_key
from tests.utils.ports import free_ports


@contextmanager
def app_without_triton(
    database_url: str, registry: RegistrySettings | None = None
) -> Iterator[TestClient]:
    """`registry`: where version moves are recorded in MLflow; by default nowhere."""
    settings = OrchestratorSettings(
        database_url=database_url,
        admin_key=ADMIN_KEY,
        worker_in_process=False,
        registry=registry or RegistrySettings(enabled=False),
    )
    grpc, http = free_ports(2)  # nothing listens there: no call in these tests reaches Triton
    with TestClient(create_app(settings, TritonSettings(grpc_port=grpc, http_port=http))) as c:
        yield c


def agent_headers(client: TestClient, tenant: str) -> dict[str, str]:
    return {"X-API-Key": new_key(client, ["tickets:write", "tickets:read"], tenant)}


def new_ticket(
    client: TestClient,
    headers: dict,
    ticket: dict,
    intent: str | None = None,
    model_version: str | None = None,
    confidence: float = 0.41,
) -> int:
    """A ticket, triaged as `intent` by `model_version` as the worker would store it."""
    answer = client.post("/v1/tickets", json=ticket, headers=headers)
    assert answer.status_code == 202, answer.text
    ticket_id = answer.json()["id"]
    if intent is not None:
        top = [(intent, confidence), ("exchange_rate", 0.2)]
        prediction = Prediction(intent, confidence, top, model_version)
        text = ticket_text(ticket["subject"], ticket["body"])
        with client.app.state.sessions() as session:
            store_triage(session.get(Ticket, ticket_id), triage_of(prediction, text))
            session.commit()
    return ticket_id


def correct(client: TestClient, headers: dict, ticket_id: int, **fields) -> dict:
    answer = client.patch(f"/v1/tickets/{ticket_id}", json=fields, headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.json()


def intent_feedback(client: TestClient, headers: dict) -> dict[int, dict]:
    """The intent corrections of the caller's tenant, by ticket."""
    feedback = client.get("/v1/feedback", headers=headers).json()["data"]
    return {item["ticket_id"]: item for item in feedback if item["field"] == "intent"}
