"""Limits on traffic without a valid key, per tenant, and across replicas sharing Redis."""

import time
import uuid

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import event

from orchestrator.api.deps import CurrentKey, SessionDep
from orchestrator.app import _limits
from orchestrator.db.session import make_engine, session_factory
from orchestrator.errors import install_handlers
from orchestrator.metrics import Metrics
from orchestrator.services import keys
from orchestrator.settings import OrchestratorSettings
from tests.orchestrator.api.test_ratelimit import REDIS_URL, redis_up
from tests.utils.orchestrator import ADMIN_KEY, error_of, new_key, new_tenant, wait_until
from tests.utils.replicas import start

IP_BURST = 6
TENANT_BURST = 12


def _limited(answer) -> bool:
    if answer.status_code != 429:
        return False
    assert int(answer.headers["Retry-After"]) >= 1
    assert error_of(answer)["code"] == "rate_limited"
    return True


# In process: how many queries a flood of bad keys costs.


@pytest.fixture
def key_app(tmp_path, monkeypatch):
    """An app with the real key dependency and limits, and a count of database queries."""
    monkeypatch.setenv("ORCHESTRATOR_IP_RATE_LIMIT_BURST", str(IP_BURST))
    monkeypatch.setenv("ORCHESTRATOR_IP_RATE_LIMIT_PER_MINUTE", "1")
    engine = make_engine(f"sqlite:///{tmp_path / 'keys.db'}")
    queries = []
    event.listen(engine, "before_cursor_execute", lambda *args: queries.append(args[2]))
    app = FastAPI()
    install_handlers(app)
    app.state.metrics = Metrics()
    app.state.sessions = session_factory(engine)
    _limits(app, OrchestratorSettings())
    with app.state.sessions() as session:
        tenant = keys.create_tenant(session=session, name="acme")
        _, good = keys.create_key(session=session, tenant_id=tenant.id, scopes=["chat"])

    @app.get("/who")
    def who(key: CurrentKey, _session: SessionDep) -> dict:
        return {"id": key.id}

    with TestClient(app) as client:
        queries.clear()
        yield client, good, queries
    engine.dispose()


def test_a_repeated_bad_key_costs_one_query(key_app):
    client, _, queries = key_app
    answers = [client.get("/who", headers={"X-API-Key": "sk-bad"}) for _ in range(IP_BURST)]
    assert [a.status_code for a in answers] == [401] * IP_BURST
    assert len(queries) == 1  # the rest were answered from the negative cache


def test_a_flood_of_random_keys_is_limited_before_the_database(key_app):
    client, good, queries = key_app
    assert client.get("/who", headers={"X-API-Key": good}).status_code == 200  # now cached
    answers = [client.get("/who", headers={"X-API-Key": f"sk-{i}"}) for i in range(30)]
    assert [a.status_code for a in answers[: IP_BURST - 1]] == [401] * (IP_BURST - 1)
    assert all(_limited(a) for a in answers[IP_BURST:])
    assert len(queries) <= IP_BURST  # one per key let through, none for the refused ones
    assert client.get("/who", headers={"X-API-Key": good}).status_code == 200  # unaffected


# Through uvicorn: public routes, per-tenant limits.


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("limits")
    orchestrator = start(
        f"sqlite:///{tmp / 'orchestrator.db'}",
        tmp,
        ORCHESTRATOR_IP_RATE_LIMIT_PER_MINUTE="1",
        ORCHESTRATOR_IP_RATE_LIMIT_BURST=str(IP_BURST),
        ORCHESTRATOR_TENANT_RATE_LIMIT_PER_MINUTE="1",
        ORCHESTRATOR_TENANT_RATE_LIMIT_BURST=str(TENANT_BURST),
        ORCHESTRATOR_KEY_CACHE_S="600",
    )
    client = orchestrator.client
    assert client.get("/v1/admin/keys", headers={"X-API-Key": ADMIN_KEY}).status_code == 200
    yield client  # the admin key is cached now, so the floods below do not lock it out
    orchestrator.close()


def test_keys_of_one_tenant_share_its_limit(limited):
    # First in this module: a new key's first lookup is charged to the client IP, which the
    # floods below use up.
    tenant_id = new_tenant(limited, "busy tenant")["id"]
    keys_of_tenant = [new_key(limited, ["tickets:read"], tenant_id) for _ in range(2)]
    answers = [
        limited.get("/v1/tickets", headers={"X-API-Key": key})
        for _ in range(TENANT_BURST // 2 + 2)
        for key in keys_of_tenant
    ]
    assert [a.status_code for a in answers[:TENANT_BURST]] == [200] * TENANT_BURST
    assert all(_limited(a) for a in answers[TENANT_BURST:])


@pytest.mark.parametrize(
    ("method", "path", "headers"),
    [
        ("GET", "/v1/tickets", {"X-API-Key": "sk-wrong"}),
        ("GET", "/v1/tickets", {}),
        ("GET", "/readyz", {}),
        ("POST", "/v1/intake/webhook", {"X-Tenant-Id": "1"}),
    ],
)
def test_requests_without_a_valid_key_are_limited_per_client(limited, method, path, headers):
    answers = [limited.request(method, path, headers=headers) for _ in range(IP_BURST + 2)]
    assert any(_limited(a) for a in answers), [a.status_code for a in answers]


def test_liveness_and_cached_keys_are_not_held_up_by_the_client_limit(limited):
    for _ in range(IP_BURST + 2):
        limited.get("/readyz")
    assert all(limited.get("/healthz").status_code == 200 for _ in range(20))
    assert limited.get("/v1/admin/keys", headers={"X-API-Key": ADMIN_KEY}).status_code == 200


# Two replicas sharing one Redis.


@pytest.fixture(scope="module")
def replicas(tmp_path_factory):
    if not redis_up():
        pytest.skip(f"no Redis at {REDIS_URL}")
    tmp = tmp_path_factory.mktemp("replicas")
    env = {
        "REDIS_URL": REDIS_URL,
        "ORCHESTRATOR_REDIS_PREFIX": f"test-{uuid.uuid4().hex}",
        "ORCHESTRATOR_TENANT_RATE_LIMIT_PER_MINUTE": "1",
        "ORCHESTRATOR_TENANT_RATE_LIMIT_BURST": str(TENANT_BURST),
    }
    url = f"sqlite:///{tmp / 'orchestrator.db'}"
    one = start(url, tmp, **env)
    two = start(url, tmp, **env)
    yield one.client, two.client
    one.close()
    two.close()


def test_a_key_revoked_on_one_replica_stops_working_on_the_other_within_two_seconds(replicas):
    one, two = replicas
    key = new_key(one, ["tickets:read"], "revoked across replicas")
    headers = {"X-API-Key": key}
    assert two.get("/v1/tickets", headers=headers).status_code == 200  # cached on replica 2
    key_id = one.get("/v1/admin/keys", headers={"X-API-Key": ADMIN_KEY}).json()["data"][0]["id"]
    assert (
        one.delete(f"/v1/admin/keys/{key_id}", headers={"X-API-Key": ADMIN_KEY}).status_code == 204
    )
    revoked_at = time.monotonic()
    wait_until(
        lambda: two.get("/v1/tickets", headers=headers).status_code == 401,
        2.0,
        interval_s=0.1,
        what="replica 2 to refuse the revoked key",
    )
    assert time.monotonic() - revoked_at < 2.0


def test_a_tenant_limit_is_shared_by_the_replicas(replicas):
    one, _ = replicas
    key = new_key(one, ["tickets:read"], "shared limit tenant")
    headers = {"X-API-Key": key}
    rounds = TENANT_BURST // 2 + 2
    answers = [c.get("/v1/tickets", headers=headers) for _ in range(rounds) for c in replicas]
    assert [a.status_code for a in answers[:TENANT_BURST]] == [200] * TENANT_BURST
    assert all(_limited(a) for a in answers[TENANT_BURST:])  # each replica alone would allow


def test_an_unreachable_redis_fails_open_and_never_fails_a_request(tmp_path):
    orchestrator = start(
        f"sqlite:///{tmp_path / 'orchestrator.db'}",
        tmp_path,
        REDIS_URL="redis://127.0.0.1:9/0",  # the discard port: connection refused
        ORCHESTRATOR_TENANT_RATE_LIMIT_PER_MINUTE="1",
        ORCHESTRATOR_TENANT_RATE_LIMIT_BURST="3",
    )
    try:
        key = new_key(orchestrator.client, ["tickets:read"], "no redis tenant")
        answers = [
            orchestrator.client.get("/v1/tickets", headers={"X-API-Key": key}) for _ in range(5)
        ]
        assert [a.status_code for a in answers[:3]] == [200] * 3
        assert all(_limited(a) for a in answers[3:])  # this replica's own buckets
        metrics = orchestrator.client.get("/metrics").text
        assert "support_shared_state_errors_total{operation=" in metrics
        assert 'support_rate_limited_total{limit="tenant"} 2.0' in metrics
    finally:
        orchestrator.close()
