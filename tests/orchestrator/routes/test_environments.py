"""Keys belong to an environment, production by default or staging; the caller's is shown by
GET /v1/me and kept on the tickets it submits. In process, without Triton (fast)."""

import pytest

from tests.utils.feedback import app_without_triton
from tests.utils.orchestrator import ADMIN_KEY, error_of, new_key, new_tenant

ADMIN = {"X-API-Key": ADMIN_KEY}
SCOPES = ["tickets:write", "tickets:read", "chat"]


@pytest.fixture(scope="module")
def client(database_url):
    with app_without_triton(database_url) as client:
        yield client


@pytest.fixture(scope="module")
def tenant_id(client) -> int:
    return new_tenant(client, "environments tenant")["id"]


def _create(client, tenant_id: int, **extra):
    return client.post(
        "/v1/admin/keys", json={"tenant_id": tenant_id, "scopes": SCOPES, **extra}, headers=ADMIN
    )


def test_a_key_is_production_unless_made_for_staging_and_the_listing_says_which(client, tenant_id):
    plain, staging = _create(client, tenant_id), _create(client, tenant_id, environment="staging")
    assert plain.status_code == staging.status_code == 201, (plain.text, staging.text)
    assert plain.json()["environment"] == "production"
    assert staging.json()["environment"] == "staging"
    listed = client.get(f"/v1/admin/keys?tenant_id={tenant_id}", headers=ADMIN).json()["data"]
    by_id = {k["id"]: k["environment"] for k in listed}
    assert by_id[plain.json()["id"]] == "production"
    assert by_id[staging.json()["id"]] == "staging"


@pytest.mark.parametrize("environment", ["qa", "Staging", "", None, 1])
def test_an_unknown_environment_is_a_422_naming_the_field(client, tenant_id, environment):
    refused = _create(client, tenant_id, environment=environment)
    assert refused.status_code == 422, refused.text
    error = error_of(refused)
    assert error["param"] == "environment"
    assert "'production' or 'staging'" in error["message"]


def test_me_shows_the_calling_keys_environment(client, tenant_id):
    for environment in ("production", "staging"):
        key = new_key(client, ["chat"], tenant_id, environment=environment)
        me = client.get("/v1/me", headers={"X-API-Key": key})
        assert me.status_code == 200, me.text
        assert me.json() == {
            "id": me.json()["id"],
            "tenant_id": tenant_id,
            "scopes": ["chat"],
            "environment": environment,
        }
    assert client.get("/v1/me", headers={"X-API-Key": "sk-nobody"}).status_code == 401


def test_a_ticket_keeps_the_environment_of_the_key_that_submitted_it(client, tenant_id):
    for environment in ("production", "staging"):
        headers = {"X-API-Key": new_key(client, SCOPES, tenant_id, environment=environment)}
        accepted = client.post(
            "/v1/tickets", json={"subject": "Card", "body": "Where is it?"}, headers=headers
        )
        assert accepted.status_code == 202, accepted.text
        ticket = client.get(f"/v1/tickets/{accepted.json()['id']}", headers=headers).json()
        assert ticket["environment"] == environment
