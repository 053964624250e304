"""Shared fixtures: one small model built by the real export code, one real Triton serving it.

The test build is the same pipeline as `python -m export build`, made fast: 16 training texts
per intent, one epoch, accuracy checked on 200 test texts. Its exported files are cached under
`var/test-cache/` (or `$TEST_MODEL_CACHE`), keyed by the export code and the build options, so
only the first run on a machine trains; the repository itself is written fresh each session
from the committed configs.
"""

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

import contracts
import export
from contracts.xray import XRAY_FILE, XRAY_REFERENCE_FILE
from export.build import BuildOptions, build
from export.credit.build import CreditBuildOptions, build_credit
from export.repository import copy_into, write_models
from export.settings import ExportSettings
from export.xray.build import XrayBuildOptions, build_xray
from orchestrator.settings import TritonSettings
from orchestrator.triton.launcher import TritonServer
from tests.utils.mock_triton import mock_triton_settings
from tests.utils.orchestrator import POSTGRES_URL, Orchestrator, postgres_reachable, reset_postgres
from tests.utils.ports import loopback_triton

TEST_BUILD = BuildOptions(epochs=1, train_per_label=16, test_limit=200)
# The x-ray classifier's test build: `python -m export xray`'s code on 512 training images
TEST_XRAY_BUILD = XrayBuildOptions(epochs=2, train_limit=512)
# The credit model's: one tree size on 5,000 applicants (seconds: built every session)
TEST_CREDIT_BUILD = CreditBuildOptions(quick=True, train_limit=5000, german=False)


@pytest.fixture(scope="session", autouse=True)
def mlflow_store(tmp_path_factory) -> str:
    """Whatever records in MLflow without a store of its own (retrain, a version move) writes
    into this throwaway one, never into the checkout's var/mlflow."""
    folder = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        patch.setenv("REGISTRY_ARTIFACT_ROOT", str(folder / "artifacts"))
        yield uri


@pytest.fixture(scope="session")
def export_settings(tmp_path_factory) -> ExportSettings:
    return ExportSettings(work_dir=tmp_path_factory.mktemp("export"))


EXPORTED = {
    "encoder_fp32": "encoder.fp32.onnx",
    "encoder_int8": "encoder.int8.onnx",
    "classifier": "classifier.onnx",
    "intent": "intent.onnx",
}


def _cache_dir(options=TEST_BUILD, sources: str = "*.py") -> Path:
    """Where a test build's work folder is kept, named by everything that shapes it."""
    digest = hashlib.sha256(repr(options).encode())
    for source in sorted(Path(export.__file__).parent.glob(sources)):
        digest.update(source.read_bytes())
    digest.update((Path(contracts.__file__).parent / "images.py").read_bytes())
    root = Path(os.environ.get("TEST_MODEL_CACHE", Path(__file__).parents[1] / "var/test-cache"))
    return root / digest.hexdigest()[:16]


def _cached_build(cache: Path, work: Path, build_into) -> dict:
    """The build's summary; its work folder from the cache, or built by `build_into(work)` and
    cached whole (renamed into place, so a half-written cache is never read)."""
    if (cache / "summary.json").is_file():
        shutil.copytree(cache, work, dirs_exist_ok=True)
        return json.loads((cache / "summary.json").read_text())
    summary = build_into(work)
    (work / "summary.json").write_text(json.dumps(summary))
    partial = cache.with_name(f"{cache.name}.partial-{os.getpid()}")
    shutil.copytree(work, partial, dirs_exist_ok=True)
    shutil.rmtree(cache, ignore_errors=True)
    partial.rename(cache)
    return summary


@pytest.fixture(scope="session")
def built_repository(tmp_path_factory, export_settings) -> tuple[Path, dict]:
    """The repository with the test builds of triage, the x-ray classifier and the credit model
    installed."""
    repository, work = tmp_path_factory.mktemp("model_repository"), export_settings.work_dir
    summary = _cached_build(
        _cache_dir(), work, lambda _: build(export_settings, TEST_BUILD, repository)
    )
    write_models(repository, **{name: work / file for name, file in EXPORTED.items()})
    xray = _cached_build(
        _cache_dir(TEST_XRAY_BUILD, "xray/*.py"),
        work / "xray",
        lambda _: build_xray(export_settings, TEST_XRAY_BUILD, repository),
    )
    copy_into(
        repository,
        {
            XRAY_FILE: work / "xray" / f"xray.{xray['served']}.onnx",
            XRAY_REFERENCE_FILE: work / "xray" / "xray_reference.json",
        },
    )
    build_credit(export_settings, TEST_CREDIT_BUILD, repository)
    return repository, summary


@pytest.fixture(scope="session")
def triton_settings(tmp_path_factory, built_repository) -> TritonSettings:
    return loopback_triton(built_repository[0], tmp_path_factory.mktemp("triton"))


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
    return POSTGRES_URL


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


@pytest.fixture(scope="session")
def mock_triton(tmp_path_factory):
    """A real Triton serving only the mock LLM as `llm` (tests/utils/mock_triton.py): fast."""
    with TritonServer(mock_triton_settings(tmp_path_factory.mktemp("mock-triton"))) as server:
        yield server


# The fast lane (`make test-fast`, `pytest -m "not slow"`): a test that reaches any of these
# fixtures, directly or through another, trains or builds the model repository, starts the
# real models in Triton, or starts a uvicorn orchestrator, and is marked slow here.
SLOW_FIXTURES = frozenset({"built_repository", "triton", "api", "llm_server", "hf_model_folder"})


def pytest_collection_modifyitems(items):
    for item in items:
        if SLOW_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


def pytest_sessionstart(session):
    """A llama.cpp compiled for another CPU segfaults mid-run and hides every later result:
    stop before the first test instead, saying why (tests/utils/llama_build.py)."""
    from tests.utils.llama_build import problems

    found = problems()
    if found:
        pytest.exit("the installed llama.cpp is not the Makefile's:\n" + "\n".join(found), 2)
