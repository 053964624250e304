"""Model cards shaped as `python -m export retrain` writes them, for the MLflow record's fast
tests (tests/export/test_retrain.py runs the real command)."""

import json
from pathlib import Path

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
                    "recall_alpha": 0.05,
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
                "recall_drops_refused": {} if passed else {"card_arrival": 100.0},
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
