"""Version moves through the control plane are recorded in MLflow's Model Registry (a throwaway
SQLite store) once committed: aliases follow the states. A registry that fails or hangs costs
the record only: the move answers as usual, and the failure is counted and logged."""

import time

import pytest

from contracts.registry import RegistrySettings, aliases
from orchestrator.services import rollout_record
from tests.utils.feedback import app_without_triton
from tests.utils.orchestrator import ADMIN_KEY

ADMIN = {"X-API-Key": ADMIN_KEY}
FAILURES = "support_mlflow_record_failures_total"


def _post(client, path: str, body: dict):
    answer = client.post(f"/v1/model/{path}", json=body, headers=ADMIN)
    assert answer.status_code in (200, 201), answer.text
    return answer


def _failures(client, reason: str) -> float:
    registry = client.app.state.metrics.registry
    return registry.get_sample_value(FAILURES, {"reason": reason}) or 0.0


@pytest.fixture(scope="module")
def registry(tmp_path_factory) -> RegistrySettings:
    folder = tmp_path_factory.mktemp("mlflow")
    return RegistrySettings(
        tracking_uri=f"sqlite:///{folder / 'mlflow.db'}", artifact_root=folder / "artifacts"
    )


@pytest.fixture(scope="module")
def client(database_url, registry):
    with app_without_triton(database_url, registry) as client:
        yield client


def test_each_move_sets_the_aliases_once_committed(client, registry):
    model = "mlflow_flow_model"
    _post(client, "versions", {"model": model, "version": 2})
    assert aliases(registry, model) == {"production": "1", "candidate": "2"}
    _post(client, "canary", {"model": model, "version": 2, "percent": 20})
    assert aliases(registry, model) == {"production": "1", "canary": "2"}
    _post(client, "promote", {"model": model})
    assert aliases(registry, model) == {"production": "2"}
    _post(client, "rollback", {"model": model})
    assert aliases(registry, model) == {"production": "1"}
    assert _failures(client, "error") == _failures(client, "timeout") == 0


def test_a_refused_move_changes_nothing_in_mlflow(client, registry):
    model = "mlflow_refused_model"
    _post(client, "versions", {"model": model, "version": 3})
    refused = client.post("/v1/model/promote", json={"model": model}, headers=ADMIN)
    assert refused.status_code == 409
    assert aliases(registry, model) == {"production": "1", "candidate": "3"}


def test_a_failing_registry_costs_the_record_not_the_move(database_url, tmp_path, caplog):
    broken = RegistrySettings(tracking_uri="nosuchscheme://nowhere", artifact_root=tmp_path)
    with app_without_triton(database_url, broken) as client:
        answer = _post(client, "versions", {"model": "mlflow_broken_model", "version": 2})
        assert answer.json()["data"][0]["state"] == "candidate"
        assert _failures(client, "error") == 1
    assert "recording the versions of 'mlflow_broken_model' in MLflow failed" in caplog.text


def test_a_hanging_registry_is_waited_for_timeout_s_only(
    database_url, registry, monkeypatch, caplog
):
    monkeypatch.setattr(rollout_record, "record_states", lambda *_: time.sleep(3))
    slow = registry.model_copy(update={"timeout_s": 0.2})
    with app_without_triton(database_url, slow) as client:
        started = time.monotonic()
        _post(client, "versions", {"model": "mlflow_slow_model", "version": 2})
        assert time.monotonic() - started < 2
        assert _failures(client, "timeout") == 1
    assert "took over 0.2 s" in caplog.text
