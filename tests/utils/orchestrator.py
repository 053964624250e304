"""Starting the real orchestrator under uvicorn for tests, and small request helpers."""

import os
import signal
import subprocess
import time

import httpx
from sqlalchemy import create_engine, text

from loadtest.bench.servers import start_uvicorn, stop_process, wait_serving
from tests.utils.ports import free_ports

ADMIN_KEY = "sk-test-admin-key-0123456789"
# TEST_POSTGRES_DB lets several checkouts test on one server side by side.
POSTGRES_DB = os.environ.get("TEST_POSTGRES_DB", "test")
POSTGRES_URL = f"postgresql+psycopg://postgres@127.0.0.1:5432/{POSTGRES_DB}"
# The keys of a triage result (orchestrator/schemas/triage.py, Triage).
TRIAGE_FIELDS = frozenset({
    "intent", "confidence", "department", "type", "priority", "top", "model_version",
    "confidence_band",
})  # fmt: skip
# Fast variants of the real settings: short drafts, quick retries. Attempts and leases keep
# their defaults: the no-loss tests hold with what operators run.
TEST_ENV = {
    "ORCHESTRATOR_DRAFT_MAX_TOKENS": "24",
    "ORCHESTRATOR_JOB_BACKOFF_BASE_S": "0.5",
    "ORCHESTRATOR_JOB_BACKOFF_MAX_S": "2",
}


def postgres_reachable() -> bool:
    try:
        with create_engine(POSTGRES_URL).connect():
            return True
    except Exception:
        return False


def reset_postgres() -> None:
    """An empty `public` schema: every table and the migration history gone."""
    engine = create_engine(POSTGRES_URL)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()


class Orchestrator:
    """One `uvicorn orchestrator.app:create_app` process on a free loopback port."""

    def __init__(self, database_url: str, triton_settings, **env: str):
        (self.port,) = free_ports(1)
        self.env = dict(
            os.environ,
            DATABASE_URL=database_url,
            ORCHESTRATOR_ADMIN_KEY=ADMIN_KEY,
            TRITON_GRPC_PORT=str(triton_settings.grpc_port),
            TRITON_HTTP_PORT=str(triton_settings.http_port),
            TRITON_MODEL_REPOSITORY=str(triton_settings.model_repository),
            **{**TEST_ENV, **env},  # a test's own settings win over the defaults
        )
        self.process: subprocess.Popen | None = None
        # Idle connections are dropped before uvicorn's 5 s keep-alive ends them: a request sent
        # on one the server is closing at that moment fails ("Server disconnected"), as it did
        # after a pause of several seconds (stopping Triton) in test_no_loss.
        self.client = httpx.Client(
            base_url=f"http://127.0.0.1:{self.port}",
            timeout=60,
            limits=httpx.Limits(keepalive_expiry=2.0),
        )

    def start(self, timeout_s: float = 60) -> "Orchestrator":
        self.process = start_uvicorn("orchestrator.app:create_app", self.port, self.env)
        try:
            wait_serving(f"http://127.0.0.1:{self.port}", self.process, "/healthz", timeout_s)
        except RuntimeError as error:
            raise AssertionError(f"the orchestrator did not start: {error}") from None
        return self

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a crash."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)

    def close(self) -> None:
        self.stop()
        self.client.close()


def admin(client: httpx.Client, method: str, path: str, **kwargs) -> httpx.Response:
    return client.request(method, path, headers={"X-API-Key": ADMIN_KEY}, **kwargs)


def new_tenant(client: httpx.Client, name: str) -> dict:
    created = admin(client, "POST", "/v1/admin/tenants", json={"name": name})
    assert created.status_code == 201, created.text
    return created.json()


def new_key(
    client: httpx.Client, scopes: list[str], tenant: str | int, environment: str | None = None
) -> str:
    tenant_id = tenant if isinstance(tenant, int) else new_tenant(client, tenant)["id"]
    asked = {"tenant_id": tenant_id, "scopes": scopes}
    if environment is not None:
        asked["environment"] = environment
    key = admin(client, "POST", "/v1/admin/keys", json=asked)
    assert key.status_code == 201, key.text
    return key.json()["key"]


def error_of(response: httpx.Response) -> dict:
    error = response.json()["error"]
    fields = {"message", "type", "param", "code"}
    # a 422 for the request's shape also lists every problem found
    assert set(error) == fields or (
        response.status_code == 422 and set(error) == {*fields, "errors"}
    )
    return error


def wait_until(predicate, timeout_s: float, interval_s: float = 0.25, what: str = "condition"):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
