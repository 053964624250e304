"""`python -m export credit-retrain`: a candidate credit model trained on the Taiwan training
split plus the outcomes lenders reported, and the gate it must pass against production.

The outcomes (export/credit/outcomes.py) are ordered by when they were reported; the most
recent `holdout_fraction` of them is kept out of training and judged on, the rest join the
training split. The candidate is trained, exported with its contributions and checked for
parity as `export credit` does (export/credit/build.py), and the gate compares it with the
production version, read from the serving repository (`credit_model/<v>/model.onnx`, v from
the orchestrator's database):

- on the Taiwan test split, AUC at most `auc_tolerance` below production's, and the Brier
  score at most `brier_tolerance` above it (the probabilities drive decisions, not only the
  ranking);
- on the held-out outcomes, where at least MIN_HOLDOUT with both outcomes were held out, AUC
  at most `auc_tolerance` below production's.

Passed or refused, the candidate is written as `<candidates>/credit_model/<v>/` (model.onnx,
reference.json, model_card.json), v after every version served or written, and the last line
names the card. `python -m export credit-publish` copies a passed one into the repository.
"""

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from contracts.credit import CREDIT_MODEL, credit_model_name
from export.credit.build import QUICK_GRID, check_parity, drift_reference
from export.credit.data import CreditSplit, load_taiwan
from export.credit.metrics import report
from export.credit.onnx_files import outputs, tree_model
from export.credit.outcomes import Outcomes, read_outcomes
from export.credit.publish import CREDIT
from export.credit.train import TreeConfig, train_trees
from export.production import production_step_file
from export.settings import ExportSettings
from export.step_publish import next_version, write_candidate

HOLDOUT_FRACTION = 0.2
MIN_HOLDOUT = 50  # held-out outcomes (of both kinds) before the gate judges on them
STEPS = 4


@dataclass(frozen=True)
class CreditGateCriteria:
    auc_tolerance: float = 0.01  # below production's AUC
    brier_tolerance: float = 0.005  # above production's Brier score on the test split


@dataclass(frozen=True)
class CreditRetrainOptions:
    database_url: str
    production: Path | None = None  # the serving repository (default: the project's)
    production_version: int | None = None  # default: production in the database, else 1
    output: Path | None = None  # candidates (default: var/candidates)
    grid: bool = False  # the tree-size grid `export credit` searches; else `make up`'s size
    train_limit: int | None = None  # the first N Taiwan training rows only
    holdout_fraction: float = HOLDOUT_FRACTION
    shuffle_labels: bool = False  # a broken candidate, to see the gate refuse it
    criteria: CreditGateCriteria = field(default_factory=CreditGateCriteria)


@dataclass(frozen=True)
class CreditRetrainResult:
    passed: bool
    card_path: Path
    card: dict


def retrain_credit(settings: ExportSettings, options: CreditRetrainOptions) -> CreditRetrainResult:
    repository = options.production or settings.model_repository
    candidates = options.output or settings.candidates_dir
    production, production_file = production_step_file(
        CREDIT, repository, options.database_url, options.production_version, "credit"
    )
    outcomes = read_outcomes(options.database_url)
    learn, held = outcomes.split_recent(options.holdout_fraction)
    print(
        f"lenders' outcomes: {len(outcomes)} ({len(learn)} to train on, {len(held)} held out "
        "for the gate)",
        flush=True,
    )
    splits = load_taiwan(settings.credit_dir)
    train = joined(splits["train"].head(options.train_limit), learn)
    if options.shuffle_labels:
        train = CreditSplit(train.fields, np.random.default_rng(0).permutation(train.labels))
    version = next_version(CREDIT, repository, candidates)
    work = settings.work_dir / "credit_retrain"
    work.mkdir(parents=True, exist_ok=True)

    print(f"== 1/{STEPS} gradient-boosted trees on {len(train)} applicants", flush=True)
    grid = {} if options.grid else QUICK_GRID
    booster, trees = train_trees(train, splits["val"], TreeConfig(seed=settings.seed, **grid))
    print(f"== 2/{STEPS} the ONNX file and parity", flush=True)
    file = work / "model.onnx"
    tree_model(booster, file)
    features = np.concatenate([train.features, splits["test"].features])
    parity = check_parity(file, features, booster.predict(features, raw_score=True))
    reference = drift_reference(file, train, work)

    print(f"== 3/{STEPS} gate: candidate {version} against production {production}", flush=True)
    gate = judge(file, production_file, splits["test"], held, options.criteria)
    print(f"== 4/{STEPS} writing candidate {version}", flush=True)
    card = {
        "model": CREDIT_MODEL,
        "version": version,
        "ensemble": credit_model_name(version),
        "status": "passed" if gate["passed"] else "refused",
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "production_version": production,
        "outcomes": _counts(outcomes, learn, held),
        "training_applicants": len(train),
        "shuffled_labels": options.shuffle_labels,
        "gate": gate,
        "training": {"trees": asdict(trees), "parity_max_abs_logit_difference": parity},
    }
    folder = candidates / CREDIT_MODEL / str(version)
    card_path = write_candidate(folder, file, reference, card)
    print(json.dumps({k: card[k] for k in ("version", "status")} | {"gate": gate}, indent=2))
    print(f"wrote {card_path}", flush=True)
    return CreditRetrainResult(gate["passed"], card_path, card)


def judge(
    candidate: Path,
    production: Path,
    test: CreditSplit,
    held: CreditSplit,
    criteria: CreditGateCriteria,
) -> dict:
    """The gate's report: each file's scores, and the reasons to refuse (none: passed)."""
    judged = len(held) >= MIN_HOLDOUT and len(set(held.labels.tolist())) == 2
    scores = {
        "candidate": _scores(candidate, test, held, judged),
        "production": _scores(production, test, held, judged),
    }
    new, old = scores["candidate"], scores["production"]
    reasons = []
    if new["test"]["auc"] < old["test"]["auc"] - criteria.auc_tolerance:
        reasons.append(
            f"test AUC {new['test']['auc']:.4f} against production's {old['test']['auc']:.4f} "
            f"(at most {criteria.auc_tolerance:g} lower)"
        )
    if new["test"]["brier"] > old["test"]["brier"] + criteria.brier_tolerance:
        reasons.append(
            f"test Brier score {new['test']['brier']:.4f} against production's "
            f"{old['test']['brier']:.4f} (at most {criteria.brier_tolerance:g} higher)"
        )
    if judged and new["held_out_auc"] < old["held_out_auc"] - criteria.auc_tolerance:
        reasons.append(
            f"AUC on the {len(held)} held-out outcomes {new['held_out_auc']:.4f} against "
            f"production's {old['held_out_auc']:.4f}"
        )
    return {
        "passed": not reasons,
        "reasons": reasons,
        "criteria": asdict(criteria),
        "held_out_judged": judged,
        **scores,
    }


def joined(first: CreditSplit, second: CreditSplit) -> CreditSplit:
    return CreditSplit(
        pd.concat([first.fields, second.fields], ignore_index=True),
        np.concatenate([first.labels, second.labels]),
    )


def _scores(file: Path, test: CreditSplit, held: CreditSplit, judged: bool) -> dict:
    found = report(outputs(file, test.features)["probability"][:, 0], test.labels)
    scored = {"test": {k: found[k] for k in ("auc", "ks", "brier")}, "held_out_auc": None}
    if judged:
        probabilities = outputs(file, held.features)["probability"][:, 0]
        scored["held_out_auc"] = round(report(probabilities, held.labels)["auc"], 4)
    return scored


def _counts(outcomes: Outcomes, learn: CreditSplit, held: CreditSplit) -> dict:
    return {
        "read": len(outcomes),
        "defaulted": int(outcomes.split.labels.sum()),
        "trained_on": len(learn),
        "held_out": len(held),
    }
