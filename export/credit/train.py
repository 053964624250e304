"""Training the credit models on the training split, chosen on the validation split:

- gradient-boosted trees (LightGBM), a small grid of tree sizes, each stopped early on the
  validation AUC; scikit-learn's HistGradientBoosting is fitted beside them as the measured
  alternative;
- the scorecard baseline: each feature cut into up to SCORECARD_BINS quantile bins, each bin's
  weight of evidence, and a logistic regression on those: points per feature and bin.
"""

import time
from dataclasses import dataclass, field

import lightgbm as lgb
import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression

from export.credit.data import CreditSplit
from export.xray.metrics import auc

SCORECARD_BINS = 10


@dataclass(frozen=True)
class TreeConfig:
    learning_rate: float = 0.03
    # the grid searched on the validation split
    num_leaves: tuple[int, ...] = (7, 15, 31)
    min_child_samples: tuple[int, ...] = (50, 100)
    subsample: float = 0.8
    colsample_bytree: float = 0.7
    reg_lambda: float = 1.0
    max_trees: int = 3000
    patience: int = 100  # rounds without a better validation AUC
    seed: int = 13
    threads: int = 2


@dataclass
class TreeReport:
    grid: list[dict] = field(default_factory=list)
    chosen: dict = field(default_factory=dict)
    seconds: float = 0.0


def train_trees(train: CreditSplit, val: CreditSplit, config: TreeConfig, verbose: bool = True):
    """The booster with the best validation AUC of the grid, and what each one scored."""
    started, report, best = time.perf_counter(), TreeReport(), None
    for leaves in config.num_leaves:
        for min_child in config.min_child_samples:
            model = lgb.LGBMClassifier(
                n_estimators=config.max_trees,
                learning_rate=config.learning_rate,
                num_leaves=leaves,
                min_child_samples=min_child,
                subsample=config.subsample,
                subsample_freq=1,
                colsample_bytree=config.colsample_bytree,
                reg_lambda=config.reg_lambda,
                use_missing=False,  # inputs are checked: no value is ever missing
                deterministic=True,
                seed=config.seed,
                n_jobs=config.threads,
                verbose=-1,
            )
            model.fit(
                train.features,
                train.labels,
                eval_X=(val.features,),
                eval_y=(val.labels,),
                eval_metric="auc",
                callbacks=[lgb.early_stopping(config.patience, verbose=False)],
            )
            score = auc(model.predict_proba(val.features)[:, 1], val.labels)
            row = {"num_leaves": leaves, "min_child_samples": min_child,
                   "trees": int(model.best_iteration_), "val_auc": round(score, 4)}  # fmt: skip
            report.grid.append(row)
            if verbose:
                print(f"  trees: {row}", flush=True)
            if best is None or score > best[0]:
                best = (score, model, row)
    report.chosen, report.seconds = best[2], round(time.perf_counter() - started, 1)
    booster = best[1].booster_
    booster.free_dataset()
    return booster, report


def train_alternative(train: CreditSplit, val: CreditSplit, test: CreditSplit, seed: int) -> dict:
    """scikit-learn's HistGradientBoosting, stopped early, scored as the trees are."""
    started = time.perf_counter()
    model = HistGradientBoostingClassifier(
        learning_rate=0.05, max_leaf_nodes=15, max_iter=1000, early_stopping=True,
        validation_fraction=0.15, random_state=seed,
    ).fit(train.features, train.labels)  # fmt: skip
    return {
        "model": "sklearn HistGradientBoostingClassifier",
        "iterations": int(model.n_iter_),
        "val_auc": round(auc(model.predict_proba(val.features)[:, 1], val.labels), 4),
        "test_auc": round(auc(model.predict_proba(test.features)[:, 1], test.labels), 4),
        "seconds": round(time.perf_counter() - started, 1),
    }


@dataclass(frozen=True)
class Scorecard:
    edges: np.ndarray  # float [F, K], each feature's bin edges, padded with +inf
    points: np.ndarray  # float [F, K + 1], logit points of each feature's bins
    bias: float

    def contributions(self, features: np.ndarray) -> np.ndarray:
        bins = (features[:, :, None] > self.edges[None]).sum(axis=2)
        return np.take_along_axis(self.points, bins.T, axis=1).T

    def logit(self, features: np.ndarray) -> np.ndarray:
        return self.bias + self.contributions(features).sum(axis=1)


def train_scorecard(train: CreditSplit, bins: int = SCORECARD_BINS) -> Scorecard:
    features, labels = train.features.astype(np.float64), train.labels
    edges = [_edges(column, bins) for column in features.T]
    width = max(len(e) for e in edges)
    padded = np.full((len(edges), width), np.inf)
    for f, e in enumerate(edges):
        padded[f, : len(e)] = e
    bin_of = (features[:, :, None] > padded[None]).sum(axis=2)  # [N, F]
    woe = np.zeros((len(edges), width + 1))
    bad_total, good_total = labels.sum(), (1 - labels).sum()
    for f in range(len(edges)):
        for b in range(width + 1):
            members = bin_of[:, f] == b
            bad, good = labels[members].sum(), (1 - labels[members]).sum()
            # weight of evidence, signed so that a riskier bin is higher
            woe[f, b] = np.log(((bad + 0.5) / bad_total) / ((good + 0.5) / good_total))
    encoded = np.take_along_axis(woe, bin_of.T, axis=1).T
    regression = LogisticRegression(max_iter=1000).fit(encoded, labels)
    points = woe * regression.coef_[0][:, None]  # riskier bins: positive points
    # centred on the training applicants, as the trees' contributions are on the root's value
    means = np.take_along_axis(points, bin_of.T, axis=1).mean(axis=1)
    return Scorecard(padded, points - means[:, None], float(regression.intercept_[0] + means.sum()))


def _edges(column: np.ndarray, bins: int) -> np.ndarray:
    """Up to bins - 1 distinct cut points at the column's quantiles (value > edge: next bin)."""
    quantiles = np.quantile(column, np.linspace(0, 1, bins + 1)[1:-1], method="lower")
    return np.unique(quantiles)
