"""MLflow records (contracts/registry.py) in a throwaway SQLite store: a retrain's run with its
params, metrics, tags and card, the registered version a passing candidate becomes, and the
aliases and state tags that follow the rollout's moves."""

import json
from pathlib import Path

import pytest

from contracts.registry import (
    RegistrySettings,
    aliases,
    log_training_run,
    make_client,
    record_states,
)
from tests.utils.cards import HASH, card_report, write_card


@pytest.fixture
def registry(tmp_path) -> RegistrySettings:
    return RegistrySettings(
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}",
        artifact_root=tmp_path / "mlflow" / "artifacts",
    )


def test_a_passing_candidate_is_a_run_and_a_registered_candidate_version(registry, tmp_path):
    report = card_report("passed")
    card = write_card(tmp_path, report)
    recorded = log_training_run(registry, report, card)
    client = make_client(registry)
    run = client.get_run(recorded.run_id)
    assert run.info.status == "FINISHED"
    assert (
        run.info.experiment_id == client.get_experiment_by_name(registry.experiment).experiment_id
    )
    assert run.data.params["recipe.epochs"] == "1"
    assert run.data.params["recipe.train_per_label"] == "8"
    assert run.data.params["gate.latency_budget"] == "1.5"
    assert run.data.metrics["test.candidate_accuracy"] == pytest.approx(0.61)
    assert run.data.metrics["corrections.production_accuracy"] == 0.0
    assert run.data.metrics["latency.candidate_p50_ms_per_batch"] == pytest.approx(19.7)
    assert run.data.metrics["candidate_fp32.test_accuracy"] == pytest.approx(0.615)
    history = client.get_metric_history(recorded.run_id, "train.test_accuracy")
    assert [(m.step, m.value) for m in history] == [(1, pytest.approx(0.61))]
    tags = run.data.tags
    assert tags["data.content_hash"] == HASH
    assert tags["code_version"] == "c0de" * 10
    assert tags["data.shuffled_labels"] == "False"
    assert tags["status"] == "passed" and "gate.reasons" not in tags
    assert [a.path for a in client.list_artifacts(recorded.run_id, "report")] == [
        "report/model_card.json"
    ]
    stored = Path(client.download_artifacts(recorded.run_id, "report/model_card.json", tmp_path))
    assert json.loads(stored.read_text()) == report
    assert str(tmp_path / "mlflow" / "artifacts") in run.info.artifact_uri  # not ./mlruns

    version = client.get_model_version(registry.model, recorded.version)
    assert version.run_id == recorded.run_id
    assert version.tags["triton_version"] == "2"
    assert version.tags["state"] == "candidate"
    assert version.tags["triton.repository"] == str(tmp_path / "candidates")
    assert "ticket_encoder/4/model.onnx" in version.tags["triton.files"]
    assert aliases(registry, registry.model) == {"candidate": "2"}


def test_a_refused_candidate_is_a_run_with_its_reasons_and_no_version(registry, tmp_path):
    report = card_report("refused")
    recorded = log_training_run(registry, report, write_card(tmp_path, report))
    assert recorded.version is None
    run = make_client(registry).get_run(recorded.run_id)
    assert run.data.tags["status"] == "refused"
    assert run.data.tags["gate.reasons"].startswith("accuracy on test (200 texts)")
    assert run.data.tags["data.shuffled_labels"] == "True"
    assert run.data.metrics["recall.intents_over_margin"] == 1
    assert run.data.metrics["recall.intents_refused"] == 1
    assert make_client(registry).search_model_versions(f"name = '{registry.model}'") == []


def test_aliases_and_state_tags_follow_the_rollout(registry, tmp_path):
    report = card_report("passed")
    trained = log_training_run(registry, report, write_card(tmp_path, report)).version
    model = registry.model

    def states() -> dict[str, str]:
        client = make_client(registry)
        found = client.search_model_versions(f"name = '{model}'")
        return {v.tags["triton_version"]: v.tags["state"] for v in found}

    record_states(registry, model, {1: "production"})  # before 2 is registered for serving
    assert aliases(registry, model) == {"production": "1", "candidate": "2"}  # retrain's stays

    record_states(registry, model, {1: "production", 2: "canary"})
    assert aliases(registry, model) == {"production": "1", "canary": "2"}
    assert states() == {"1": "production", "2": "canary"}
    # version 1 was never trained here: it gets a version of its own, not the trained one
    assert str(make_client(registry).get_model_version_by_alias(model, "canary").version) == trained

    record_states(registry, model, {1: "archived", 2: "production"})  # promote
    assert aliases(registry, model) == {"production": "2"}
    assert states() == {"1": "archived", "2": "production"}

    record_states(registry, model, {1: "production", 2: "rolled_back"})  # rollback
    assert aliases(registry, model) == {"production": "1"}
    assert states() == {"1": "production", "2": "rolled_back"}

    record_states(registry, model, {1: "production", 2: "rolled_back", 3: "candidate"})
    assert aliases(registry, model) == {"production": "1", "candidate": "3"}
    assert len(make_client(registry).search_model_versions(f"name = '{model}'")) == 3
