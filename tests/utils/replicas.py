"""Orchestrators for auth and limit tests: no Triton needed (they call no model), no worker."""

from pathlib import Path

from orchestrator.settings import TritonSettings
from tests.utils.orchestrator import Orchestrator
from tests.utils.ports import free_ports


def no_triton(tmp: Path) -> TritonSettings:
    """Ports nothing listens on: model routes answer 503, everything else works."""
    http, grpc, metrics = free_ports(3)
    return TritonSettings(
        http_port=http, grpc_port=grpc, metrics_port=metrics, model_repository=tmp
    )


def start(database_url: str, tmp: Path, **env: str) -> Orchestrator:
    orchestrator = Orchestrator(database_url, no_triton(tmp))
    orchestrator.env.update({"ORCHESTRATOR_WORKER_IN_PROCESS": "false", **env})
    return orchestrator.start()
