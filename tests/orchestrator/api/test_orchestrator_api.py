"""The orchestrator under uvicorn against a real Triton, on SQLite and on PostgreSQL."""

import pytest

from tests.utils.orchestrator import ADMIN_KEY, TRIAGE_FIELDS, admin
from tests.utils.orchestrator import error_of as _error
from tests.utils.orchestrator import new_key as _new_key

RATE_BURST = 40


def test_health_and_readiness(api):
    assert api.get("/healthz").json() == {"status": "ok"}
    ready = api.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": True, "ticket_triage": True}


def test_missing_wrong_and_revoked_keys_get_the_same_401(api):
    key = _new_key(api, ["tickets:write"], "revocation tenant")
    body = {"texts": ["I lost my card"]}
    doomed = admin(
        api, "POST", "/v1/admin/keys", json={"tenant_id": 1, "scopes": ["tickets:write"]}
    )
    doomed_headers = {"X-API-Key": doomed.json()["key"]}
    assert api.post("/v1/triage", json=body, headers=doomed_headers).status_code == 200
    assert admin(api, "DELETE", f"/v1/admin/keys/{doomed.json()['id']}").status_code == 204
    assert admin(api, "DELETE", f"/v1/admin/keys/{doomed.json()['id']}").status_code == 404
    answers = [
        api.post("/v1/triage", json=body),
        api.post("/v1/triage", json=body, headers={"X-API-Key": "sk-wrong"}),
        api.post("/v1/triage", json=body, headers=doomed_headers),
    ]
    assert (
        api.post("/v1/triage", json=body, headers={"Authorization": f"Bearer {key}"}).status_code
        == 200
    )
    for response in answers:
        assert response.status_code == 401
        assert _error(response)["code"] == "invalid_api_key"
    assert answers[2].json() == answers[1].json()  # a revoked key reads like a wrong one


def test_admin_routes_need_the_admin_scope(api):
    key = _new_key(api, ["tickets:write", "tickets:read"], "plain tenant")
    response = api.post("/v1/admin/tenants", json={"name": "x"}, headers={"X-API-Key": key})
    assert response.status_code == 403
    assert _error(response)["code"] == "insufficient_scope"


def test_admin_input_errors_name_the_field(api):
    assert admin(api, "POST", "/v1/admin/tenants", json={"name": "dup"}).status_code == 201
    duplicate = admin(api, "POST", "/v1/admin/tenants", json={"name": "dup"})
    assert duplicate.status_code == 409 and _error(duplicate)["param"] == "name"
    unknown_scope = admin(api, "POST", "/v1/admin/keys", json={"tenant_id": 1, "scopes": ["root"]})
    assert unknown_scope.status_code == 422 and "unknown scopes" in _error(unknown_scope)["message"]
    no_tenant = admin(api, "POST", "/v1/admin/keys", json={"tenant_id": 9999, "scopes": ["chat"]})
    assert no_tenant.status_code == 404 and _error(no_tenant)["param"] == "tenant_id"


def test_triage_returns_intent_routing_and_top_five(api):
    key = _new_key(api, ["tickets:write"], "triage tenant")
    texts = ["Someone stole my card, please block it!", "How do I change my PIN?"]
    response = api.post("/v1/triage", json={"texts": texts}, headers={"X-API-Key": key})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert len(results) == 2
    for result in results:
        assert set(result) == TRIAGE_FIELDS
        assert result["model_version"] == "1"  # the ensemble's version, as Triton answered
        assert len(result["top"]) == 5 and result["top"][0]["intent"] == result["intent"]
        assert result["priority"] in ("low", "normal", "high", "urgent")


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "texts"),
        ({"texts": []}, "texts"),
        ({"texts": "one string"}, "texts"),
        ({"texts": ["ok"], "extra": 1}, "extra"),
        ({"texts": ["x"] * 65}, "texts"),
        ({"texts": ["fine", "   "]}, "texts.1"),
        ({"texts": ["x" * 20000]}, "texts.0"),
    ],
)
def test_bad_triage_input_gets_a_4xx_naming_the_field(api, body, param):
    key = _new_key(api, ["tickets:write"], f"bad input {param} {len(str(body))}")
    response = api.post("/v1/triage", json=body, headers={"X-API-Key": key})
    assert response.status_code == 422, response.text
    assert _error(response)["param"] == param


def test_openapi_describes_every_route_with_schemas_and_auth(api):
    spec = api.get("/openapi.json").json()
    assert set(spec["components"]["securitySchemes"]) == {"ApiKey", "Bearer"}
    public = {"/healthz", "/readyz", "/v1/intake/webhook"}  # the webhook is signed instead
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            assert operation.get("summary"), (method, path)
            assert "200" in operation["responses"] or any(
                code.startswith("2") for code in operation["responses"]
            )
            if path not in public:
                assert operation.get("security"), f"{method} {path} shows no auth"
            if method in ("post", "patch") and path not in ("/v1/tickets/{ticket_id}/draft",):
                assert "requestBody" in operation or "parameters" in operation, (method, path)


def test_metrics_show_latency_by_route_template_and_triage_outcomes(api):
    key = _new_key(api, ["tickets:write"], "metrics tenant")
    api.post("/v1/triage", json={"texts": ["My card was stolen"]}, headers={"X-API-Key": key})
    api.delete("/v1/admin/keys/123456", headers={"X-API-Key": ADMIN_KEY})
    text = api.get("/metrics").text
    assert (
        'support_http_request_duration_seconds_bucket{le="0.005",method="POST",route="/v1/triage",status="200"}'
        in text
    )
    assert 'route="/v1/admin/keys/{key_id}",status="404"' in text  # the template, not the id
    assert "/123456" not in text
    assert "support_triage_outcomes_total{department=" in text


def test_a_key_over_its_rate_limit_gets_429_with_retry_after(api):
    key = _new_key(api, ["tickets:write"], "busy tenant")
    body = {"texts": ["hello"]}
    answers = [
        api.post("/v1/triage", json=body, headers={"X-API-Key": key})
        for _ in range(RATE_BURST + 20)
    ]
    limited = [r for r in answers if r.status_code == 429]
    assert limited, "no request was limited"
    assert all(r.status_code in (200, 429) for r in answers)
    assert int(limited[0].headers["Retry-After"]) >= 1
    assert _error(limited[0])["code"] == "rate_limited"
    other = _new_key(api, ["tickets:write"], "quiet tenant")
    assert api.post("/v1/triage", json=body, headers={"X-API-Key": other}).status_code == 200


def test_a_revoked_key_stops_working_at_once_despite_the_key_cache(api):
    created = admin(api, "POST", "/v1/admin/tenants", json={"name": "cache tenant"}).json()
    record = admin(
        api,
        "POST",
        "/v1/admin/keys",
        json={"tenant_id": created["id"], "scopes": ["tickets:write"]},
    ).json()
    headers = {"X-API-Key": record["key"]}
    body = {"texts": ["I lost my card"]}
    assert api.post("/v1/triage", json=body, headers=headers).status_code == 200  # now cached
    assert admin(api, "DELETE", f"/v1/admin/keys/{record['id']}").status_code == 204
    revoked = api.post("/v1/triage", json=body, headers=headers)
    assert revoked.status_code == 401 and _error(revoked)["code"] == "invalid_api_key"
