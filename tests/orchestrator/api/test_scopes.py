"""Platform admins and tenant admins: an `admin` key of a customer tenant manages its own
tenant only; the platform tenant is reserved; the bootstrap key rotates."""

import pytest
from sqlalchemy import create_engine, text

from tests.utils.orchestrator import admin, error_of, new_tenant
from tests.utils.replicas import start

BIG = str(2**63)


@pytest.fixture(scope="module")
def database_url(tmp_path_factory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('scopes') / 'orchestrator.db'}"


@pytest.fixture(scope="module")
def api(database_url, tmp_path_factory):
    orchestrator = start(database_url, tmp_path_factory.mktemp("repo"))
    yield orchestrator.client
    orchestrator.close()


def _key(api, tenant_id: int, scopes: list[str]) -> dict:
    created = admin(api, "POST", "/v1/admin/keys", json={"tenant_id": tenant_id, "scopes": scopes})
    assert created.status_code == 201, created.text
    return created.json()


@pytest.fixture(scope="module")
def two_tenants(api) -> tuple[dict, dict]:
    """Tenants A and B, each with a tenant admin key and a tickets key."""
    tenants = []
    for name in ("tenant a", "tenant b"):
        tenant = new_tenant(api, name)
        tenant["admin"] = {"X-API-Key": _key(api, tenant["id"], ["admin"])["key"]}
        tenant["reader"] = _key(api, tenant["id"], ["tickets:read"])
        tenants.append(tenant)
    return tenants[0], tenants[1]


def test_a_tenant_admin_cannot_mint_keys_for_another_tenant(api, two_tenants):
    a, b = two_tenants
    for_b = {"tenant_id": b["id"], "scopes": ["tickets:read"]}
    refused = api.post("/v1/admin/keys", json=for_b, headers=a["admin"])
    assert refused.status_code == 403, refused.text
    assert error_of(refused)["param"] == "tenant_id"
    own = api.post("/v1/admin/keys", json={"scopes": ["tickets:read"]}, headers=a["admin"])
    assert own.status_code == 201 and own.json()["tenant_id"] == a["id"]
    reader = {"X-API-Key": own.json()["key"]}
    assert api.get("/v1/tickets", headers=reader).status_code == 200


def test_a_tenant_admin_cannot_create_tenants_or_grant_platform(api, two_tenants):
    a, _ = two_tenants
    created = api.post("/v1/admin/tenants", json={"name": "sneaky"}, headers=a["admin"])
    assert created.status_code == 403 and error_of(created)["code"] == "insufficient_scope"
    platform = api.post("/v1/admin/keys", json={"scopes": ["platform"]}, headers=a["admin"])
    assert platform.status_code == 422 and error_of(platform)["param"] == "scopes"
    # Not even a platform admin can give a customer tenant's key the platform scope.
    granted = admin(
        api, "POST", "/v1/admin/keys", json={"tenant_id": a["id"], "scopes": ["platform"]}
    )
    assert granted.status_code == 422


def test_a_tenant_admin_revokes_and_lists_its_own_keys_only(api, two_tenants):
    a, b = two_tenants
    other = api.delete(f"/v1/admin/keys/{b['reader']['id']}", headers=a["admin"])
    assert other.status_code == 404  # as if it did not exist
    reader_b = {"X-API-Key": b["reader"]["key"]}
    assert api.get("/v1/tickets", headers=reader_b).status_code == 200  # still works
    listed = api.get("/v1/admin/keys", headers=a["admin"])
    assert listed.status_code == 200
    assert {k["tenant_id"] for k in listed.json()["data"]} == {a["id"]}
    assert "key" not in listed.json()["data"][0]
    assert api.get(f"/v1/admin/keys?tenant_id={b['id']}", headers=a["admin"]).status_code == 404
    everyone = admin(api, "GET", "/v1/admin/keys?limit=200").json()["data"]
    assert {a["id"], b["id"]} <= {k["tenant_id"] for k in everyone}
    mine = api.delete(f"/v1/admin/keys/{a['reader']['id']}", headers=a["admin"])
    assert mine.status_code == 204
    revoked = api.get("/v1/tickets", headers={"X-API-Key": a["reader"]["key"]})
    assert revoked.status_code == 401


def test_a_tenant_admin_rotates_its_own_webhook_secret_only(api, two_tenants):
    a, b = two_tenants
    other = api.post(f"/v1/admin/tenants/{b['id']}/webhook-secret", headers=a["admin"])
    assert other.status_code == 404
    own = api.post(f"/v1/admin/tenants/{a['id']}/webhook-secret", headers=a["admin"])
    assert own.status_code == 200 and own.json()["webhook_secret"] != a["webhook_secret"]


def test_model_load_and_unload_are_for_platform_admins(api, two_tenants):
    a, _ = two_tenants
    for path in ("/v1/model/load", "/v1/model/unload"):
        answer = api.post(path, json={"model": "llm"}, headers=a["admin"])
        assert answer.status_code == 403, (path, answer.text)
        assert error_of(answer)["message"] == "this key lacks the 'platform' scope"
        # The platform key passes the check (then finds no Triton here: 503, not 403).
        assert admin(api, "POST", path, json={"model": "llm"}).status_code == 503
    # Reading the model list is allowed to any admin (no Triton here: 503, not 403).
    assert api.get("/v1/model/status", headers=a["admin"]).status_code == 503


def test_a_tenant_admin_reads_its_own_audit_entries_only(api, two_tenants, database_url):
    a, b = two_tenants
    engine = create_engine(database_url)
    with engine.begin() as connection:
        for tenant in (a, b):
            connection.execute(
                text(
                    "INSERT INTO audit_log (key_id, tenant_id, action, target, request, result,"
                    " created_at) VALUES (:key, :tenant, 'load', :target, '{}', 'ok',"
                    " CURRENT_TIMESTAMP)"
                ),
                {"key": tenant["reader"]["id"], "tenant": tenant["id"], "target": tenant["name"]},
            )
    engine.dispose()
    seen = api.get("/v1/model/audit", headers=a["admin"])
    assert seen.status_code == 200, seen.text
    assert [e["target"] for e in seen.json()["data"]] == [a["name"]]
    everything = admin(api, "GET", "/v1/model/audit").json()["data"]
    assert {a["name"], b["name"]} <= {e["target"] for e in everything}


@pytest.mark.parametrize("name", ["admin", "platform", "Platform ", "ADMIN"])
def test_the_platform_tenant_name_is_reserved(api, name):
    taken = admin(api, "POST", "/v1/admin/tenants", json={"name": name})
    assert taken.status_code == 422 and error_of(taken)["param"] == "name"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("DELETE", f"/v1/admin/keys/{BIG}", None),
        ("POST", f"/v1/admin/tenants/{BIG}/webhook-secret", None),
        ("POST", "/v1/admin/keys", {"tenant_id": 2**63, "scopes": ["chat"]}),
        ("POST", "/v1/admin/keys", {"tenant_id": 0, "scopes": ["chat"]}),
        ("GET", f"/v1/admin/keys?tenant_id={BIG}", None),
    ],
)
def test_ids_past_64_bits_are_a_422_not_a_500(api, method, path, body):
    answer = admin(api, method, path, json=body)
    assert answer.status_code == 422, answer.text
    assert error_of(answer)["param"].split(".")[-1] in ("key_id", "tenant_id")


def test_a_rotated_bootstrap_key_stops_working(tmp_path):
    url = f"sqlite:///{tmp_path / 'rotation.db'}"
    old, new = "sk-bootstrap-key-a-0123456789", "sk-bootstrap-key-b-0123456789"
    first = start(url, tmp_path, ORCHESTRATOR_ADMIN_KEY=old)
    try:
        made = first.client.post(
            "/v1/admin/tenants", json={"name": "kept"}, headers={"X-API-Key": old}
        )
        assert made.status_code == 201
    finally:
        first.close()
    second = start(url, tmp_path, ORCHESTRATOR_ADMIN_KEY=new)
    try:
        tenants = {"name": "after rotation"}
        gone = second.client.post("/v1/admin/tenants", json=tenants, headers={"X-API-Key": old})
        assert gone.status_code == 401
        works = second.client.post("/v1/admin/tenants", json=tenants, headers={"X-API-Key": new})
        assert works.status_code == 201
        keys = second.client.get("/v1/admin/keys", headers={"X-API-Key": new}).json()["data"]
        bootstrap = [k for k in keys if k["origin"] == "bootstrap"]
        assert [k["revoked_at"] is None for k in bootstrap] == [True, False]  # newest first
    finally:
        second.close()
    third = start(url, tmp_path, ORCHESTRATOR_ADMIN_KEY=new)  # a plain restart changes nothing
    try:
        again = third.client.get("/v1/admin/keys", headers={"X-API-Key": new})
        assert again.status_code == 200
    finally:
        third.close()
