"""HTTP servers a benchmark starts for itself: uvicorn subprocesses on free loopback ports.

The orchestrator and the plain FastAPI app are started the same way (one uvicorn worker,
warning-level logs, no access log), so that the comparison is between the apps, not between
their server settings.
"""

import os
import secrets
import socket
import subprocess  # nosec B404  # starts uvicorn for the bench, fixed argv
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

UVICORN_WORKERS = 1
# Far above what one machine can send: the bench measures the path, not the rate limiter.
# A benchmark measures capacity, not the limits: one key and one tenant drive every stream.
UNLIMITED_RATE = {
    f"ORCHESTRATOR_{scope}RATE_LIMIT_{knob}": value
    for scope in ("", "TENANT_", "IP_", "ANONYMOUS_")
    for knob, value in (("PER_MINUTE", "100000000"), ("BURST", "1000000"))
} | {"ORCHESTRATOR_TENANT_LLM_CONCURRENCY": "0", "ORCHESTRATOR_TENANT_LLM_TOKENS_PER_MINUTE": "0"}


@dataclass
class Served:
    """A running server: its base URL, its process, and the API key to call it with."""

    base_url: str
    process: subprocess.Popen
    api_key: str | None = None

    def cpu_seconds(self) -> float:
        """CPU time the server process has used so far (user + system)."""
        times = psutil.Process(self.process.pid).cpu_times()
        return times.user + times.system


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def uvicorn_command(app: str, port: int) -> list[str]:
    return [
        sys.executable, "-m", "uvicorn", app, "--factory", "--host", "127.0.0.1",
        "--port", str(port), "--workers", str(UVICORN_WORKERS),
        "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip


def start_uvicorn(app: str, port: int, env: dict[str, str]) -> subprocess.Popen:
    """`app` (a factory, "module:function") under uvicorn on 127.0.0.1:`port`; `env` is added
    to this process's environment."""
    command = uvicorn_command(app, port)
    return subprocess.Popen(command, env=dict(os.environ, **env))  # nosec B603  # fixed argv, no shell


def stop_process(process: subprocess.Popen, timeout_s: float = 30) -> None:
    """SIGTERM (a graceful shutdown), then SIGKILL if it has not ended within `timeout_s`."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_serving(
    base_url: str, process: subprocess.Popen, path: str = "/healthz", timeout_s: float = 120
) -> None:
    """Until `path` answers 200; RuntimeError if the process exits or time runs out first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{base_url}: the server exited ({process.returncode})")
        try:
            if httpx.get(base_url + path, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{base_url}{path} did not answer 200 within {timeout_s} s")


@contextmanager
def uvicorn_app(app: str, env: dict[str, str], ready_path: str = "/healthz") -> Iterator[Served]:
    """Starts `app` (a factory, "module:function"), waits until `ready_path` answers 200."""
    port = free_port()
    served = Served(f"http://127.0.0.1:{port}", start_uvicorn(app, port, env))
    try:
        wait_serving(served.base_url, served.process, ready_path)
        yield served
    finally:
        stop_process(served.process)


TRIAGE_SCOPES = ("tickets:write", "tickets:read")


@contextmanager
def orchestrator(
    triton_env: dict[str, str], scopes=TRIAGE_SCOPES, ready_path: str = "/readyz", **settings: str
) -> Iterator[Served]:
    """The orchestrator on SQLite in a temporary folder, with a fresh tenant and key.

    The key is made through the admin API, as a customer's would be, with `scopes`; the
    rate limit is lifted (see UNLIMITED_RATE); `settings` are further ORCHESTRATOR_* values.
    It is used once `ready_path` answers 200 (/readyz wants the triage models; a bench of the
    chat path alone waits for /healthz and checks `llm` with a first request).
    """
    admin_key = "sk-bench-" + secrets.token_urlsafe(24)
    with tempfile.TemporaryDirectory(prefix="bench-orchestrator-") as folder:
        env = {
            **triton_env,
            **UNLIMITED_RATE,
            "DATABASE_URL": f"sqlite:///{Path(folder) / 'orchestrator.db'}",
            "ORCHESTRATOR_ADMIN_KEY": admin_key,
            **settings,
        }
        with uvicorn_app("orchestrator.app:create_app", env, ready_path=ready_path) as served:
            served.api_key = create_key(served.base_url, admin_key, scopes)
            yield served


def create_key(base_url: str, admin_key: str, scopes=TRIAGE_SCOPES) -> str:
    """A new tenant and an API key for it, through /v1/admin."""
    headers = {"X-API-Key": admin_key}
    with httpx.Client(base_url=base_url, headers=headers, timeout=30) as client:
        tenant = client.post("/v1/admin/tenants", json={"name": f"bench-{secrets.token_hex(4)}"})
        tenant.raise_for_status()
        key = client.post(
            "/v1/admin/keys", json={"tenant_id": tenant.json()["id"], "scopes": list(scopes)}
        )
        key.raise_for_status()
        return key.json()["key"]


@contextmanager
def plain_fastapi(repository: Path) -> Iterator[Served]:
    """The plain app (loadtest/bench/plain_fastapi.py) over the same model files."""
    env = {"PLAIN_TRIAGE_REPOSITORY": str(repository)}
    with uvicorn_app("loadtest.bench.plain_fastapi:create_app", env) as served:
        yield served
