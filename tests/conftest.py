"""Shared fixtures: one small model built by the real export code, one real Triton serving it.

The test build is the same pipeline as `python -m export build`, made fast: 16 training texts
per intent, one epoch, accuracy checked on 200 test texts.
"""

from pathlib import Path

import pytest

from export.build import BuildOptions, build
from export.settings import ExportSettings
from orchestrator.settings import TritonSettings
from orchestrator.triton.launcher import TritonServer
from tests.utils.orchestrator import Orchestrator, postgres_reachable, reset_postgres
from tests.utils.ports import free_ports

TEST_BUILD = BuildOptions(epochs=1, train_per_label=16, test_limit=200)


@pytest.fixture(scope="session")
def export_settings(tmp_path_factory) -> ExportSettings:
    return ExportSettings(work_dir=tmp_path_factory.mktemp("export"))


@pytest.fixture(scope="session")
def built_repository(tmp_path_factory, export_settings) -> tuple[Path, dict]:
    repository = tmp_path_factory.mktemp("model_repository")
    summary = build(export_settings, TEST_BUILD, repository)
    return repository, summary


@pytest.fixture(scope="session")
def triton_settings(tmp_path_factory, built_repository) -> TritonSettings:
    http, grpc, metrics = free_ports(3)
    work = tmp_path_factory.mktemp("triton")
    return TritonSettings(
        http_port=http,
        grpc_port=grpc,
        metrics_port=metrics,
        model_repository=built_repository[0],
        work_dir=work,
        log_file=work / "triton.log",
    )


@pytest.fixture(scope="session")
def triton(triton_settings):
    with TritonServer(triton_settings) as server:
        yield server


@pytest.fixture(scope="session")
def hf_model_folder(tmp_path_factory) -> Path:
    """A Hugging Face folder made offline from the packaged GGUF (transformers reads GGUF)."""
    from llm_engine.hf_folder import folder_from_gguf

    return folder_from_gguf(tmp_path_factory.mktemp("hf-smollm2"))


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def database_url(request, tmp_path_factory) -> str:
    """Each test module runs once on an SQLite file and once on the PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('db') / 'orchestrator.db'}"
    if not postgres_reachable():
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432 (database test)")
    reset_postgres()
    return "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@pytest.fixture(scope="module")
def api(database_url, triton_settings, triton):
    """A real orchestrator (uvicorn, in-process worker) against the session's Triton."""
    orchestrator = Orchestrator(
        database_url,
        triton_settings,
        ORCHESTRATOR_RATE_LIMIT_PER_MINUTE="600",
        ORCHESTRATOR_RATE_LIMIT_BURST="40",
    ).start()
    yield orchestrator.client
    orchestrator.close()
