import sys

import pytest

from orchestrator.settings import TritonSettings
from orchestrator.triton.launcher import TritonServer, TritonStartError, assemble_backends
from tests.utils.ports import free_ports


def test_backend_directory_has_python_backend_stub_and_onnxruntime(tmp_path):
    target = assemble_backends(tmp_path / "backends")
    assert (target / "python" / "libtriton_python.so").is_file()
    assert (target / "python" / "triton_python_backend_stub").is_file()
    assert (target / "onnxruntime" / "model.py").is_file()


def test_command_binds_loopback_and_uses_explicit_model_control(tmp_path):
    settings = TritonSettings(http_port=18080, grpc_port=18081, metrics_port=18082)
    command = TritonServer(settings, models=("ticket_triage",)).command(tmp_path)
    assert "--model-control-mode=explicit" in command
    assert "--http-address=127.0.0.1" in command and "--grpc-address=127.0.0.1" in command
    assert "--http-port=18080" in command and "--load-model=ticket_triage" in command
    assert any(arg.startswith("--backend-config=python,shm-region-prefix-name=") for arg in command)


@pytest.mark.slow  # starts Triton
def test_a_model_that_cannot_load_fails_the_start_with_the_log(tmp_path):
    http, grpc, metrics = free_ports(3)
    settings = TritonSettings(
        http_port=http,
        grpc_port=grpc,
        metrics_port=metrics,
        model_repository=tmp_path / "empty-repository",
        work_dir=tmp_path / "work",
        log_file=tmp_path / "triton.log",
        startup_timeout_s=60,
    )
    settings.model_repository.mkdir()
    with (
        pytest.raises(TritonStartError) as error,
        TritonServer(settings, models=("no_such_model",)),
    ):
        pass
    assert "no_such_model" in str(error.value)


def _stack_environment(built_repository, tmp_path) -> dict[str, str]:
    import os

    http, grpc, metrics, api = free_ports(4)
    return dict(
        os.environ,
        TRITON_HTTP_PORT=str(http),
        TRITON_GRPC_PORT=str(grpc),
        TRITON_METRICS_PORT=str(metrics),
        TRITON_MODEL_REPOSITORY=str(built_repository[0]),
        TRITON_WORK_DIR=str(tmp_path / "work"),
        TRITON_LOG_FILE=str(tmp_path / "triton.log"),
        TRITON_MODELS='["ticket_triage"]',
        ORCHESTRATOR_PORT=str(api),
        DATABASE_URL=f"sqlite:///{tmp_path / 'orchestrator.db'}",
    )


def _start(command: str, env: dict[str, str]):
    import subprocess

    return subprocess.Popen(
        [sys.executable, "-m", "orchestrator", command],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_serve_command_stops_triton_cleanly_on_ctrl_c(built_repository, tmp_path):
    import signal

    process = _start("triton", _stack_environment(built_repository, tmp_path))
    try:
        for line in process.stdout:
            if line.startswith("Triton is serving"):
                break
        process.send_signal(signal.SIGINT)
        rest = process.communicate(timeout=60)[0]
    finally:
        process.kill()
    assert process.returncode == 0
    assert "stopping Triton" in rest


def test_up_serves_triton_and_the_orchestrator_and_prints_a_working_admin_key(
    built_repository, tmp_path
):
    import signal

    import httpx

    env = _stack_environment(built_repository, tmp_path)
    process = _start("up", env)
    url = key = None
    try:
        lines = iter(process.stdout)
        for line in lines:
            if line.startswith("Orchestrator ready at "):
                url = line.split()[3]
            if line.startswith("Admin API key (shown once"):
                key = next(lines).strip()
                break
        assert url and key, "up did not print the URL and the admin key"
        tenant = httpx.post(
            f"{url}/v1/admin/tenants", json={"name": "acme"}, headers={"X-API-Key": key}
        )
        assert tenant.status_code == 201
        assert httpx.get(f"{url}/readyz").status_code == 200
        process.send_signal(signal.SIGINT)
        rest = process.communicate(timeout=60)[0]
    finally:
        process.kill()
    assert process.returncode == 0
    assert "stopping the orchestrator" in rest and "stopping Triton" in rest
    # The same database, from the CLI: a key for a new tenant, then revoked.
    import subprocess

    created = subprocess.run(
        [sys.executable, "-m", "orchestrator", "keys", "create", "--tenant", "cli-co"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "for tenant 'cli-co'" in created and "sk-" in created
    key_id = created.split()[1]
    revoked = subprocess.run(
        [sys.executable, "-m", "orchestrator", "keys", "revoke", key_id],
        env=env,
        capture_output=True,
        text=True,
    )
    assert revoked.returncode == 0, revoked.stderr
