"""The control plane against the real Triton: status, load and unload, each audited."""

import pytest

from tests.utils.orchestrator import admin, error_of, new_key, wait_until


def _states(api, model: str) -> dict[str, str]:
    models = admin(api, "GET", "/v1/model/status").json()["models"]
    return {m["version"]: m["state"] for m in models if m["name"] == model}


def _ready(api, model: str) -> set[str]:
    return {version for version, state in _states(api, model).items() if state == "READY"}


def test_status_lists_every_model_with_versions_and_states(api):
    response = admin(api, "GET", "/v1/model/status")
    assert response.status_code == 200
    names = {m["name"] for m in response.json()["models"]}
    assert {"ticket_triage", "ticket_encoder", "ticket_classifier", "llm"} <= names
    assert _states(api, "ticket_triage") == {"1": "READY"}


def test_non_admin_keys_get_403(api):
    key = {"X-API-Key": new_key(api, ["tickets:write", "tickets:read", "chat"], "not admin")}
    assert api.get("/v1/model/status", headers=key).status_code == 403
    assert api.post("/v1/model/unload", json={"model": "llm"}, headers=key).status_code == 403


def test_unload_and_load_are_audited_and_report_memory(api):
    try:
        unloaded = admin(api, "POST", "/v1/model/unload", json={"model": "ticket_triage"})
        assert unloaded.status_code == 200, unloaded.text
        body = unloaded.json()
        assert body["result"] == "ok" and body["action"] == "unload"
        assert set(body["memory"]) == {"before_bytes", "after_bytes", "delta_bytes"}
        wait_until(lambda: _states(api, "ticket_triage").get("1") != "READY", 30,
                   what="the ensemble to unload")  # fmt: skip
    finally:
        loaded = admin(api, "POST", "/v1/model/load", json={"model": "ticket_triage"})
    assert loaded.status_code == 200, loaded.text
    assert loaded.json()["models"] == [
        {"name": "ticket_triage", "version": "1", "state": "READY", "reason": ""}
    ]
    audit = admin(api, "GET", "/v1/model/audit?limit=2").json()["data"]
    assert [(a["action"], a["target"], a["result"]) for a in audit] == [
        ("load", "ticket_triage", "ok"),
        ("unload", "ticket_triage", "ok"),
    ]
    assert (
        'support_model_memory_delta_bytes{action="load",model="ticket_triage"}'
        in api.get("/metrics").text
    )


def test_a_version_can_be_chosen_and_the_default_restored(api):
    assert _ready(api, "ticket_encoder") == {"2"}  # the latest version (INT8) serves by default
    try:
        switched = admin(
            api, "POST", "/v1/model/load", json={"model": "ticket_encoder", "version": 1}
        )
        assert switched.status_code == 200, switched.text
        assert _states(api, "ticket_encoder").get("1") == "READY"
        assert _states(api, "ticket_encoder").get("2") != "READY"
    finally:
        restored = admin(api, "POST", "/v1/model/load", json={"model": "ticket_encoder"})
    assert restored.status_code == 200
    assert _ready(api, "ticket_encoder") == {"2"}  # version 1 is now listed as UNAVAILABLE


@pytest.mark.parametrize(
    ("path", "body", "status", "param"),
    [
        ("/v1/model/load", {"model": "no_such_model"}, 404, "model"),
        ("/v1/model/unload", {"model": "no_such_model"}, 404, "model"),
        ("/v1/model/load", {"model": "ticket_encoder", "version": 9}, 422, "model"),
        ("/v1/model/load", {"model": "ticket_encoder", "version": 0}, 422, "version"),
        ("/v1/model/load", {"name": "llm"}, 422, "model"),
    ],
)
def test_bad_control_requests_get_a_clear_4xx(api, path, body, status, param):
    try:
        response = admin(api, "POST", path, json=body)
        assert response.status_code == status, response.text
        assert error_of(response)["param"] == param
        if body.get("version") == 9:  # Triton refused: audited as an error with its reason
            audit = admin(api, "GET", "/v1/model/audit?limit=1").json()["data"][0]
            assert (audit["action"], audit["result"]) == ("load", "error") and audit["detail"]
    finally:
        if body.get("version") == 9:
            admin(api, "POST", "/v1/model/load", json={"model": "ticket_encoder"})
