"""Model versions through the control plane: register, canary, promote and rollback, each
platform-admin only and audited, refusals a 409 that says why; /v1/triage then sends each text
to the version its key's environment and its text choose. In process, with a recording
triage client in place of Triton's (fast), on SQLite and PostgreSQL."""

import pytest

from orchestrator.services.versions import choose_version, model_rows, routing_of
from tests.utils.feedback import app_without_triton
from tests.utils.orchestrator import ADMIN_KEY, error_of, new_key, new_tenant
from tests.utils.triage import TEXTS, RecordingTriage

ADMIN = {"X-API-Key": ADMIN_KEY}
MODEL = "ticket_triage"


class ServedVersions:
    """ControlService.serve_version without Triton: records the versions asked."""

    def __init__(self):
        self.asked: list[tuple[str, int]] = []

    async def __call__(self, model: str, version: int) -> list:
        self.asked.append((model, version))
        return []


@pytest.fixture(scope="module")
def client(database_url):
    with app_without_triton(database_url) as client:
        state = client.app.state
        real = state.triage
        state.triage = RecordingTriage()
        state.control_service.serve_version = ServedVersions()
        yield client
        state.triage = real  # closed by the app's shutdown


@pytest.fixture
def triage(client) -> RecordingTriage:
    client.app.state.triage.calls.clear()
    return client.app.state.triage


def _post(client, path: str, body: dict, headers=ADMIN):
    return client.post(f"/v1/model/{path}", json=body, headers=headers)


def _states(client, model: str = MODEL) -> dict[int, tuple[str, int | None]]:
    listed = client.get("/v1/model/versions", params={"model": model}, headers=ADMIN)
    assert listed.status_code == 200, listed.text
    return {v["version"]: (v["state"], v["canary_percent"]) for v in listed.json()["data"]}


def _audit(client, model: str) -> list[dict]:
    entries = client.get("/v1/model/audit", params={"limit": 200}, headers=ADMIN).json()["data"]
    return [e for e in entries if e["target"] == model]


def test_a_model_never_changed_is_version_1_in_production(client):
    assert _states(client, "never_changed") == {1: ("production", None)}


def test_only_platform_admins_change_versions_and_any_admin_reads_them(client):
    tenant = new_tenant(client, "versions tenant")["id"]
    tenant_admin = {"X-API-Key": new_key(client, ["admin"], tenant)}
    agent = {"X-API-Key": new_key(client, ["tickets:write", "tickets:read"], tenant)}
    changes = [
        ("versions", {"model": "auth_model", "version": 2}),
        ("canary", {"model": "auth_model", "version": 2, "percent": 10}),
        ("promote", {"model": "auth_model"}),
        ("rollback", {"model": "auth_model"}),
    ]
    for path, body in changes:
        for headers in (tenant_admin, agent):
            refused = _post(client, path, body, headers)
            assert refused.status_code == 403, (path, refused.text)
            assert error_of(refused)["code"] == "insufficient_scope"
    listed = client.get("/v1/model/versions", params={"model": "auth_model"}, headers=agent)
    assert listed.status_code == 403
    read = client.get("/v1/model/versions", params={"model": "auth_model"}, headers=tenant_admin)
    assert read.status_code == 200
    assert _audit(client, "auth_model") == []  # nothing was done


def test_register_canary_promote_rollback_each_audited(client):
    model = "flow_model"
    registered = _post(client, "versions", {"model": model, "version": 2, "note": "retrained"})
    assert registered.status_code == 201, registered.text
    assert registered.json()["data"][0]["note"] == "retrained"
    assert _states(client, model) == {2: ("candidate", None), 1: ("production", None)}
    assert _post(client, "canary", {"model": model, "version": 2, "percent": 30}).status_code == 200
    assert _states(client, model)[2] == ("canary", 30)
    assert _post(client, "promote", {"model": model}).status_code == 200
    assert _states(client, model) == {2: ("production", None), 1: ("archived", None)}
    rolled = _post(client, "rollback", {"model": model})
    assert rolled.status_code == 200, rolled.text
    assert _states(client, model) == {2: ("rolled_back", None), 1: ("production", None)}

    audit = _audit(client, model)  # newest first
    assert [(e["action"], e["result"]) for e in reversed(audit)] == [
        ("version_register", "ok"),
        ("canary", "ok"),
        ("promote", "ok"),
        ("rollback", "ok"),
    ]
    assert audit[-2]["request"] == {"model": model, "version": 2, "percent": 30}
    assert all(e["key_id"] is not None for e in audit)


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        ("promote", {"model": "refused_model"}, 409, "no_canary"),
        ("rollback", {"model": "refused_model"}, 409, "nothing_to_roll_back"),
        (
            "canary",
            {"model": "refused_model", "version": 1, "percent": 5},
            409,
            "invalid_transition",
        ),
        (
            "canary",
            {"model": "refused_model", "version": 9, "percent": 5},
            404,
            "version_not_found",
        ),
        ("versions", {"model": "refused_model", "version": 1}, 409, "version_exists"),
    ],
)
def test_a_refused_move_says_why_changes_nothing_and_is_audited(client, path, body, status, code):
    before = _states(client, "refused_model")
    refused = _post(client, path, body)
    assert refused.status_code == status, refused.text
    error = error_of(refused)
    assert error["code"] == code and error["message"]
    assert _states(client, "refused_model") == before
    latest = _audit(client, "refused_model")[0]
    assert (latest["result"], latest["detail"]) == ("error", error["message"])


@pytest.mark.parametrize(
    "body",
    [
        {"model": "m", "version": 2, "percent": 0},
        {"model": "m", "version": 2, "percent": 100},
        {"model": "m", "version": 0, "percent": 10},
        {"model": "m", "version": 2, "percent": 10, "extra": 1},
    ],
)
def test_a_bad_canary_request_is_a_422(client, body):
    assert _post(client, "canary", body).status_code == 422


def test_triage_sends_a_canarys_share_and_staging_to_the_canary(client, triage):
    served = client.app.state.control_service.serve_version
    assert _post(client, "versions", {"model": MODEL, "version": 2}).status_code == 201
    assert served.asked == [(MODEL, 2)]  # Triton was asked to serve it before it was registered
    tenant = new_tenant(client, "canary tenant")["id"]
    production = {"X-API-Key": new_key(client, ["tickets:write"], tenant)}
    staging = {"X-API-Key": new_key(client, ["tickets:write"], tenant, environment="staging")}
    texts = TEXTS[:60]

    def answered(headers) -> list[str]:
        answer = client.post("/v1/triage", json={"texts": texts}, headers=headers)
        assert answer.status_code == 200, answer.text
        return [r["model_version"] for r in answer.json()["results"]]

    assert set(answered(production)) == {"1"}  # a candidate takes no production traffic
    assert set(answered(staging)) == {"2"}  # the newest candidate: staging's at once
    assert set(triage.priorities) == {1}  # a caller waits on these: Triton's first level

    assert _post(client, "canary", {"model": MODEL, "version": 2, "percent": 30}).status_code == 200
    triage.calls.clear()
    first = answered(production)
    assert sorted(v for v, _ in triage.calls) == [1, 2]  # one Triton call per version
    with client.app.state.sessions() as session:
        routing = routing_of(model_rows(session, MODEL))
    assert first == [str(choose_version(t, "production", routing)) for t in texts]
    assert answered(production) == first  # sticky: the same texts meet the same versions
    assert set(answered(staging)) == {"2"}

    assert _post(client, "promote", {"model": MODEL}).status_code == 200
    assert set(answered(production)) == {"2"}  # applied at once: the cache was cleared
    assert _post(client, "rollback", {"model": MODEL}).status_code == 200
    assert set(answered(production)) == {"1"}
