"""`python -m export xray-retrain`: a candidate x-ray classifier trained on PneumoniaMNIST's
training split plus clinicians' confirmations, and the gate it must pass against production.

The confirmations (export/xray/confirmations.py) are ordered by when they were made; the most
recent `holdout_fraction` of them is kept out of training and judged on, the rest join the
training split. The candidate is then trained, exported and scored as `export xray` does
(export/xray/build.py), and the gate compares it with the production version, read from the
serving repository (`xray_classifier/<v>/model.onnx`, v from the orchestrator's database):

- on PneumoniaMNIST's test split, accuracy and AUC each at most `accuracy_tolerance` points
  and `auc_tolerance` below production's;
- on the held-out confirmations, where at least MIN_HOLDOUT were held out, accuracy at most
  `accuracy_tolerance` points below production's.

Passed or refused, the candidate is written as `<candidates>/xray_classifier/<v>/` (model.onnx,
reference.json, model_card.json), v after every version served or written, and the last line
names the card. `python -m export xray-publish` copies a passed one into the repository.
"""

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from contracts.xray import XRAY_CLASSIFIER, xray_model_name
from export.production import production_step_file
from export.settings import ExportSettings
from export.step_publish import next_version as next_step_version
from export.step_publish import write_candidate
from export.xray.build import XrayBuildOptions, train_and_export
from export.xray.confirmations import Confirmations, read_confirmations
from export.xray.data import ImageSplit, load_pneumoniamnist
from export.xray.metrics import report
from export.xray.onnx_files import served_outputs
from export.xray.publish import XRAY

HOLDOUT_FRACTION = 0.2
MIN_HOLDOUT = 20  # held-out confirmations before the gate judges on them
STEPS = 4


@dataclass(frozen=True)
class XrayGateCriteria:
    accuracy_tolerance: float = 1.0  # points below production's accuracy
    auc_tolerance: float = 0.01  # below production's AUC on the test split


@dataclass(frozen=True)
class XrayRetrainOptions:
    database_url: str
    production: Path | None = None  # the serving repository (default: the project's)
    production_version: int | None = None  # default: production in the database, else 1
    output: Path | None = None  # candidates (default: var/candidates)
    build: XrayBuildOptions = field(default_factory=lambda: XrayBuildOptions(tensorrt=False))
    holdout_fraction: float = HOLDOUT_FRACTION
    shuffle_labels: bool = False  # a broken candidate, to see the gate refuse it
    criteria: XrayGateCriteria = field(default_factory=XrayGateCriteria)


@dataclass(frozen=True)
class XrayRetrainResult:
    passed: bool
    card_path: Path
    card: dict


def retrain_xray(settings: ExportSettings, options: XrayRetrainOptions) -> XrayRetrainResult:
    repository = options.production or settings.model_repository
    candidates = options.output or settings.candidates_dir
    production, production_file = production_step_file(
        XRAY, repository, options.database_url, options.production_version, "xray"
    )
    confirmations = read_confirmations(options.database_url)
    learn, held = confirmations.split_recent(options.holdout_fraction)
    print(
        f"clinicians' confirmations: {len(confirmations)} ({len(learn)} to train on, "
        f"{len(held)} held out for the gate, {confirmations.skipped} undecodable skipped)",
        flush=True,
    )
    splits = load_pneumoniamnist(settings.pneumoniamnist_dir)
    train = _joined(splits["train"].head(options.build.train_limit), learn)
    if options.shuffle_labels:
        train = ImageSplit(train.images, np.random.default_rng(0).permutation(train.labels))
    version = next_version(repository, candidates)
    work = settings.work_dir / "xray_retrain"
    trained = train_and_export(settings, options.build, train, splits, work, steps=STEPS)

    print(f"== 3/{STEPS} gate: candidate {version} against production {production}", flush=True)
    gate = judge(trained.file, production_file, splits["test"], held, options.criteria)
    print(f"== 4/{STEPS} writing candidate {version}", flush=True)
    card = {
        "model": XRAY_CLASSIFIER,
        "version": version,
        "ensemble": xray_model_name(version),
        "status": "passed" if gate["passed"] else "refused",
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "production_version": production,
        "confirmations": _counts(confirmations, learn, held),
        "training_images": len(train),
        "shuffled_labels": options.shuffle_labels,
        "gate": gate,
        "training": trained.summary,
    }
    folder = candidates / XRAY_CLASSIFIER / str(version)
    card_path = write_candidate(folder, trained.file, trained.reference, card)
    print(json.dumps({k: card[k] for k in ("version", "status")} | {"gate": gate}, indent=2))
    print(f"wrote {card_path}", flush=True)
    return XrayRetrainResult(gate["passed"], card_path, card)


def judge(
    candidate: Path,
    production: Path,
    test: ImageSplit,
    held: ImageSplit,
    criteria: XrayGateCriteria,
) -> dict:
    """The gate's report: each file's scores, and the reasons to refuse (none: passed)."""
    scores = {
        "candidate": _scores(candidate, test, held),
        "production": _scores(production, test, held),
    }
    new, old = scores["candidate"], scores["production"]
    reasons = []
    points = criteria.accuracy_tolerance / 100
    judged = len(held) >= MIN_HOLDOUT
    if new["test"]["accuracy"] < old["test"]["accuracy"] - points:
        reasons.append(
            f"test accuracy {new['test']['accuracy']:.4f} against production's "
            f"{old['test']['accuracy']:.4f} (at most {criteria.accuracy_tolerance:g} points lower)"
        )
    if new["test"]["auc"] < old["test"]["auc"] - criteria.auc_tolerance:
        reasons.append(
            f"test AUC {new['test']['auc']:.4f} against production's {old['test']['auc']:.4f} "
            f"(at most {criteria.auc_tolerance:g} lower)"
        )
    if judged and new["held_out_accuracy"] < old["held_out_accuracy"] - points:
        reasons.append(
            f"accuracy on the {len(held)} held-out confirmations {new['held_out_accuracy']:.4f} "
            f"against production's {old['held_out_accuracy']:.4f}"
        )
    return {
        "passed": not reasons,
        "reasons": reasons,
        "criteria": asdict(criteria),
        "held_out_judged": judged,
        **scores,
    }


def next_version(repository: Path, candidates: Path) -> int:
    """One above every x-ray version served in `repository` or written in `candidates`."""
    return next_step_version(XRAY, repository, candidates)


def _scores(file: Path, test: ImageSplit, held: ImageSplit) -> dict:
    outputs = served_outputs(file, test.images)
    scored = {"test": report(outputs["probability"], test.labels, float(outputs["threshold"][0]))}
    if len(held):
        labels = served_outputs(file, held.images)["label"]
        scored["held_out_accuracy"] = round(float((labels == held.labels).mean()), 4)
    else:
        scored["held_out_accuracy"] = None
    return scored


def _joined(first: ImageSplit, second: ImageSplit) -> ImageSplit:
    return ImageSplit(
        np.concatenate([first.images, second.images]),
        np.concatenate([first.labels, second.labels]),
    )


def _counts(confirmations: Confirmations, learn: ImageSplit, held: ImageSplit) -> dict:
    overridden = int((confirmations.predicted != confirmations.split.labels).sum())
    return {
        "read": len(confirmations),
        "overriding_the_model": overridden,
        "trained_on": len(learn),
        "held_out": len(held),
        "undecodable": confirmations.skipped,
    }
