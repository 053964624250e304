"""`python -m export credit`: train the credit models on the Taiwan card holders, export them
to ONNX with their contributions, check parity, report the test split, show the decision under
German credit's cost matrix, and install the trees as `credit_model`."""

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from contracts.credit import (
    CREDIT_FILE,
    CREDIT_REFERENCE_FILE,
    FEATURES,
    bin_shares,
    decile_edges,
)
from export.credit.data import (
    GERMAN_COST_ACCEPT_BAD,
    GERMAN_COST_REFUSE_GOOD,
    CreditSplit,
    load_german,
    load_taiwan,
)
from export.credit.metrics import cost_threshold, expected_cost, report
from export.credit.onnx_files import outputs, scorecard_model, tree_model
from export.credit.reasons import reasons_check, safest_values
from export.credit.train import TreeConfig, train_alternative, train_scorecard, train_trees
from export.repository import copy_into, ensure_configs
from export.settings import ExportSettings

STEPS = 5
# ONNX logits against LightGBM's raw scores and the scorecard's own arithmetic
PARITY_TOLERANCE = 1e-4
QUICK_GRID = {"num_leaves": (15,), "min_child_samples": (100,)}  # `make up`'s recipe
# Small trees learning slowly: 200 applicants' validation split chooses little, and a grid
# chose no better in the experiment (README, "Credit scoring")
GERMAN_GRID = {"num_leaves": (4,), "min_child_samples": (20,), "learning_rate": 0.02}
GERMAN_FOLDS = 5


@dataclass(frozen=True)
class CreditBuildOptions:
    quick: bool = False  # one tree size instead of the grid
    train_limit: int | None = None  # the first N training rows only, for fast test builds
    german: bool = True


def build_credit(
    settings: ExportSettings, options: CreditBuildOptions, repository: Path | None = None
) -> dict:
    """The whole pipeline; returns the summary it also writes as `credit_summary.json`."""
    repository = repository or settings.model_repository
    work = settings.work_dir / "credit"
    work.mkdir(parents=True, exist_ok=True)
    splits = load_taiwan(settings.credit_dir)
    train, val, test = splits["train"].head(options.train_limit), splits["val"], splits["test"]
    grid = QUICK_GRID if options.quick else {}
    config = TreeConfig(seed=settings.seed, **grid)

    print(f"== 1/{STEPS} gradient-boosted trees on {len(train)} applicants", flush=True)
    booster, trees = train_trees(train, val, config)
    alternative = train_alternative(train, val, test, settings.seed)
    print(f"== 2/{STEPS} the scorecard baseline", flush=True)
    scorecard = train_scorecard(train)

    print(f"== 3/{STEPS} ONNX files and parity", flush=True)
    files = {"trees": work / "credit.trees.onnx", "scorecard": work / "credit.scorecard.onnx"}
    tree_model(booster, files["trees"])
    scorecard_model(scorecard.edges, scorecard.points, scorecard.bias, files["scorecard"])
    everyone = np.concatenate([s.features for s in (train, val, test)])
    parity = {
        "trees": check_parity(files["trees"], everyone, booster.predict(everyone, raw_score=True)),
        "scorecard": check_parity(files["scorecard"], everyone, scorecard.logit(everyone)),
    }

    print(f"== 4/{STEPS} the test split", flush=True)
    scored = {name: _scored(file, test) for name, file in files.items()}
    for name, file in files.items():
        safest = safest_values(file, train.features)
        scored[name]["reasons"] = reasons_check(file, test.features, safest)
        scored[name]["safest_values"] = dict(zip(FEATURES, safest.tolist(), strict=True))
    german = _german(settings, options) if options.german else "not asked for"

    print(f"== 5/{STEPS} installing the trees as {CREDIT_FILE}", flush=True)
    reference = drift_reference(files["trees"], train, work)
    ensure_configs(repository)
    copy_into(repository, {CREDIT_FILE: files["trees"], CREDIT_REFERENCE_FILE: reference})
    summary = {
        "dataset": "Default of Credit Card Clients (Taiwan, UCI 350)",
        "split": {name: len(split) for name, split in splits.items()},
        "features": list(FEATURES),
        "trees": asdict(trees),
        "alternative": alternative,
        "served": "trees",
        "parity_max_abs_logit_difference": parity,
        "int8": _int8(files, test),
        "test": scored,
        "german": german,
        "repository": str(repository),
    }
    (work / "credit_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({name: _headline(s) for name, s in scored.items()}, indent=2))
    return summary


# What INT8 means for a tree ensemble, reported in the summary beside the measurement
TREES_INT8 = (
    "nothing to quantize: the ensemble holds thresholds and leaf values, not weights, and "
    "ONNX Runtime's quantizer left the file's operators as they were; quantizing thresholds "
    "would move applicants across splits for no gain, since a tree walk multiplies nothing"
)


def _int8(files: dict[str, Path], test: CreditSplit) -> dict:
    """Each file through ONNX Runtime's dynamic quantizer: what it changed, measured."""
    from onnxruntime.quantization import quantize_dynamic

    found = {}
    for name, file in files.items():
        quantized = file.with_suffix(".int8.onnx")
        quantize_dynamic(str(file), str(quantized))
        before, after = _op_types(file), _op_types(quantized)
        if before == after:
            found[name] = {"quantized": False, "why": TREES_INT8 if name == "trees" else None}
            continue
        fp32, int8 = (outputs(f, test.features)["probability"][:, 0] for f in (file, quantized))
        found[name] = {
            "quantized": True,
            "added": sorted(set(after) - set(before)),
            "bytes": [file.stat().st_size, quantized.stat().st_size],
            "test_auc": [report(fp32, test.labels)["auc"], report(int8, test.labels)["auc"]],
            "max_probability_change": round(float(np.abs(fp32 - int8).max()), 5),
        }
    return found


def _op_types(file: Path) -> list[str]:
    import onnx

    return sorted(node.op_type for node in onnx.load(str(file)).graph.node)


def drift_reference(served: Path, train: CreditSplit, work: Path) -> Path:
    """What drift compares recent scorings with: each feature's and the served probability's
    decile bins on the training split, with the share of applicants in each."""
    columns = {name: train.features[:, i] for i, name in enumerate(FEATURES)}
    columns["probability"] = outputs(served, train.features)["probability"][:, 0]
    reference = {}
    for name, values in columns.items():
        edges = decile_edges(values)
        reference[name] = {
            "edges": edges.tolist(),
            "shares": np.round(bin_shares(values, edges), 6).tolist(),
        }
    path = work / "credit_reference.json"
    path.write_text(json.dumps(reference))
    return path


def check_parity(file: Path, features: np.ndarray, expected: np.ndarray) -> float:
    difference = float(np.abs(outputs(file, features)["logit"][:, 0] - expected).max())
    if difference > PARITY_TOLERANCE:
        raise RuntimeError(f"{file.name}: logits differ from the model's by {difference:.2e}")
    return difference


def _scored(file: Path, test: CreditSplit) -> dict:
    started = time.perf_counter()
    probabilities = outputs(file, test.features)["probability"][:, 0]
    seconds = time.perf_counter() - started
    return {
        "file": str(file),
        **report(probabilities, test.labels),
        "applicants_per_second_in_one_batch": round(len(test) / seconds),
    }


def _headline(scored: dict) -> dict:
    return {k: scored[k] for k in ("auc", "ks", "brier", "calibration_error", "reasons")}


def _german(settings: ExportSettings, options: CreditBuildOptions) -> dict:
    """The same code on German credit: out-of-fold probabilities from GERMAN_FOLDS folds, and
    the cost per applicant of deciding at the cost matrix's threshold against approving or
    refusing everyone."""
    applicants = load_german(settings.credit_dir)
    config = TreeConfig(seed=settings.seed, **GERMAN_GRID)
    rng = np.random.default_rng(settings.seed)
    fold = np.empty(len(applicants), dtype=np.int64)
    for label in (0, 1):  # stratified: each fold has the same share of bad credits
        members = rng.permutation(np.flatnonzero(applicants.labels == label))
        fold[members] = np.arange(len(members)) % GERMAN_FOLDS
    probabilities = {"trees": np.zeros(len(applicants)), "scorecard": np.zeros(len(applicants))}
    for k in range(GERMAN_FOLDS):
        held = np.flatnonzero(fold == k)
        rest = rng.permutation(np.flatnonzero(fold != k))
        inner_val, inner_train = rest[: len(rest) // 5], rest[len(rest) // 5 :]
        booster, _ = train_trees(
            applicants.take(inner_train), applicants.take(inner_val), config, verbose=False
        )
        features = applicants.take(held).features
        probabilities["trees"][held] = booster.predict(features)
        scorecard = train_scorecard(applicants.take(np.r_[inner_train, inner_val]))
        probabilities["scorecard"][held] = 1 / (1 + np.exp(-scorecard.logit(features)))
    threshold = cost_threshold(GERMAN_COST_ACCEPT_BAD, GERMAN_COST_REFUSE_GOOD)
    labels = applicants.labels

    def cost(p, t):
        return round(
            expected_cost(p, labels, t, GERMAN_COST_ACCEPT_BAD, GERMAN_COST_REFUSE_GOOD), 4
        )

    return {
        "dataset": "Statlog German Credit (UCI 144), 1,000 applicants, 30 % bad",
        "cost_matrix": {
            "accept_bad": GERMAN_COST_ACCEPT_BAD,
            "refuse_good": GERMAN_COST_REFUSE_GOOD,
        },
        "folds": GERMAN_FOLDS,
        "threshold": round(threshold, 4),
        "cost_per_applicant": {
            **{name: cost(p, threshold) for name, p in probabilities.items()},
            "approve_all": cost(np.zeros(len(labels)), 1.0),
            "refuse_all": cost(np.ones(len(labels)), 0.5),
        },
        "auc": {name: round(report(p, labels)["auc"], 4) for name, p in probabilities.items()},
        "refused_share": {
            name: round(float((p >= threshold).mean()), 4) for name, p in probabilities.items()
        },
    }
