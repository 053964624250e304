"""The canary's watch: when a canary is judged worse than production, and the automatic abort
(rolled back, audited as the orchestrator's, counted for the alert), with canary calls that
fail answered by production meanwhile. In process with a recording triage client, on SQLite
and PostgreSQL; the same on the real stack is in tests/orchestrator/test_mlops_loop.py."""

import asyncio

import pytest

from orchestrator.services.canary import CanaryPolicy, Evidence, reasons_to_abort
from tests.utils.feedback import app_without_triton
from tests.utils.orchestrator import ADMIN_KEY, new_key, new_tenant
from tests.utils.triage import MODEL, TEXTS, RecordingTriage

ADMIN = {"X-API-Key": ADMIN_KEY}
POLICY = CanaryPolicy(min_calls=10, min_tickets=5)
HEALTHY = Evidence(calls=100, errors=1, median_s=0.010, tickets=40, overridden=4)
FAST = Evidence(calls=100, errors=0, median_s=0.0001)


@pytest.mark.parametrize(
    ("canary", "reason"),
    [
        (Evidence(100, 1, 0.011, 40, 5), None),  # as good as production
        (Evidence(9, 9, None), None),  # too few calls to judge
        (Evidence(100, 7, 0.010), "error rate 7.0% against production's 1.0%"),
        (Evidence(100, 1, 0.021), "median latency 21.0 ms per call against production's 10.0"),
        (Evidence(100, 1, 0.010, 40, 11), "agents corrected 27.5% of its tickets"),
        (Evidence(100, 1, 0.010, 4, 4), None),  # too few tickets to judge overrides
        (Evidence(100, 1, 0.014), None),  # slower, but within the ratio
    ],
)
def test_a_canary_is_judged_against_production(canary, reason):
    reasons = reasons_to_abort(HEALTHY, canary, POLICY)
    if reason is None:
        assert reasons == []
    else:
        assert len(reasons) == 1 and reasons[0].startswith(reason), reasons


def test_sub_millisecond_jitter_is_not_a_latency_regression():
    assert reasons_to_abort(FAST, Evidence(100, 0, 0.0004), POLICY) == []
    assert reasons_to_abort(FAST, Evidence(100, 0, 0.0062), POLICY) != []


@pytest.fixture
def client(database_url, monkeypatch):
    monkeypatch.setenv("ORCHESTRATOR_CANARY_CHECK_S", "0")  # the test judges, not the timer
    monkeypatch.setenv("ORCHESTRATOR_CANARY_MIN_CALLS", "10")
    with app_without_triton(database_url) as client:
        state = client.app.state
        real = state.triage
        state.triage = RecordingTriage()
        state.control_service.serve_version = _served
        yield client
        state.triage = real


async def _served(model: str, version: int) -> list:
    """ControlService.serve_version without Triton: no replica to report."""
    return []


def _states(client, model=MODEL) -> dict[int, str]:
    listed = client.get("/v1/model/versions", params={"model": model}, headers=ADMIN).json()
    return {v["version"]: v["state"] for v in listed["data"]}


def test_a_failing_canary_is_rolled_back_audited_and_counted(client, database_url):
    model = MODEL
    for path, body in (
        ("versions", {"model": model, "version": 7}),
        ("canary", {"model": model, "version": 7, "percent": 50}),
    ):
        assert client.post(f"/v1/model/{path}", json=body, headers=ADMIN).status_code in (200, 201)
    triage, watch = client.app.state.triage, client.app.state.canary
    triage.failing.add(7)  # the canary fails live, as an unloaded model does
    headers = {"X-API-Key": new_key(client, ["tickets:write"], new_tenant(client, "c")["id"])}

    for start in range(0, 120, 4):  # 30 calls of each version
        answer = client.post(
            "/v1/triage", json={"texts": TEXTS[start : start + 4]}, headers=headers
        )
        assert answer.status_code == 200, answer.text  # callers never see the canary fail
        assert {r["model_version"] for r in answer.json()["results"]} == {"1"}
    assert any(version == 7 for version, _ in triage.calls)

    aborted = asyncio.run(watch.check())
    assert list(aborted) == [model]
    assert aborted[model][0].startswith("error rate 100.0% against production's 0.0%")
    assert _states(client) == {7: "rolled_back", 1: "production"}
    entries = client.get("/v1/model/audit", headers=ADMIN).json()["data"]
    abort = next(e for e in entries if e["action"] == "canary_abort")
    assert abort["key_id"] is None and abort["result"] == "ok"
    assert abort["request"]["reasons"] == aborted[model]
    metrics = client.get("/metrics").text
    assert f'support_canary_aborts_total{{model="{model}"}} 1.0' in metrics

    assert asyncio.run(watch.check()) == {}  # nothing left to abort
    triage.calls.clear()
    client.post("/v1/triage", json={"texts": TEXTS[:20]}, headers=headers)
    assert {version for version, _ in triage.calls} == {1}  # rolled back at once


def test_a_healthy_canary_stays(client):
    model = MODEL
    client.post("/v1/model/versions", json={"model": model, "version": 8}, headers=ADMIN)
    body = {"model": model, "version": 8, "percent": 50}
    assert client.post("/v1/model/canary", json=body, headers=ADMIN).status_code == 200
    headers = {"X-API-Key": new_key(client, ["tickets:write"], new_tenant(client, "h")["id"])}
    for start in range(0, 120, 4):
        client.post("/v1/triage", json={"texts": TEXTS[start : start + 4]}, headers=headers)
    assert asyncio.run(client.app.state.canary.check()) == {}
    assert _states(client)[8] == "canary"


def test_overrides_count_each_versions_tickets_and_those_agents_corrected(client):
    from datetime import UTC, datetime, timedelta

    from orchestrator.services.canary import overrides
    from tests.utils.feedback import agent_headers, correct, new_ticket

    since = datetime.now(UTC) - timedelta(minutes=1)
    headers = agent_headers(client, new_tenant(client, "overrides")["id"])
    ticket = {"subject": "card", "body": "my card has not arrived"}
    canary = [new_ticket(client, headers, ticket, "card_arrival", "9") for _ in range(4)]
    new_ticket(client, headers, ticket, "card_arrival", "1")
    correct(client, headers, canary[0], intent="card_delivery_estimate")
    correct(client, headers, canary[0], intent="lost_or_stolen_card")  # one ticket, counted once
    correct(client, headers, canary[1], priority="low")  # not the intent: not an override
    with client.app.state.sessions() as session:
        assert overrides(session, "9", since) == (4, 1)
        assert overrides(session, "1", since) == (1, 0)
        assert overrides(session, "9", datetime.now(UTC) + timedelta(minutes=1)) == (0, 0)
