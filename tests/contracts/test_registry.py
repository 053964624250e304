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

HASH = "ab12" * 16


def card_report(status: str = "passed") -> dict:
    """A report shaped as `python -m export retrain` writes it (tests/export runs the real one)."""
    passed = status == "passed"
    report = {
        "status": status,
        "created_at": "2026-11-30T11:00:00+00:00",
        "code_version": "c0de" * 10,
        "data": {
            "snapshot": "/var/datasets/" + HASH[:12],
            "content_hash": HASH,
            "test_hash": "fe" * 32,
            "train_texts": 616,
            "held_out_corrections": [5],
            "shuffled_labels": not passed,
        },
        "recipe": {
            "epochs": 1,
            "train_per_label": 8,
            "test_limit": 200,
            "max_length": 64,
            "tensorrt": False,
        },
        "production": {"repository": "/repo", "ticket_encoder": "2", "ticket_classifier": "1"},
        "train": {
            "epochs": 1,
            "train_examples": 616,
            "seconds": 31.5,
            "test_accuracy_by_epoch": [0.61],
        },
        "parity": {"max_embedding_diff": 2e-6, "max_score_diff": 3e-6, "cases": 8},
        "candidate_fp32_test_accuracy": 0.615,
        "gate": {
            "passed": passed,
            "reasons": [] if passed else ["accuracy on test (200 texts): candidate 1.00 % ..."],
            "metrics": {
                "criteria": {
                    "accuracy_tolerance": 0.0,
                    "max_recall_drop": 5.0,
                    "latency_budget": 1.5,
                },
                "sets": {
                    "test": {
                        "texts": 200,
                        "production_accuracy": 0.58,
                        "candidate_accuracy": 0.61 if passed else 0.01,
                    },
                    "corrections": {
                        "texts": 1,
                        "production_accuracy": 0.0,
                        "candidate_accuracy": 1.0,
                    },
                },
                "recall_drops_over_margin": {} if passed else {"card_arrival": 100.0},
                "intents_checked": 77,
                "latency": {
                    "production_p50_ms_per_batch": 20.1,
                    "candidate_p50_ms_per_batch": 19.7,
                    "budget_ms": 30.15,
                },
            },
        },
    }
    if passed:
        report["versions"] = {
            "ticket_classifier": "2",
            "ticket_encoder": {"fp32": "3", "int8": "4"},
        }
        report["files"] = {
            "ticket_classifier/2/model.onnx": 123,
            "ticket_encoder/3/model.onnx": 456,
            "ticket_encoder/4/model.onnx": 789,
        }
    return report


def write_card(root: Path, report: dict) -> Path:
    if report["status"] == "passed":
        path = root / "candidates" / "ticket_classifier" / "2" / "model_card.json"
    else:
        path = root / "candidates" / "refused" / f"20261130T110000Z-{HASH[:12]}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2))
    return path


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
    assert make_client(registry).search_model_versions(f"name = '{registry.model}'") == []


def test_aliases_and_state_tags_follow_the_rollout(registry, tmp_path):
    report = card_report("passed")
    trained = log_training_run(registry, report, write_card(tmp_path, report)).version
    model = registry.model

    def states() -> dict[str, str]:
        client = make_client(registry)
        found = client.search_model_versions(f"name = '{model}'")
        return {v.tags["triton_version"]: v.tags["state"] for v in found}

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
