"""The credit scoring models' contract: the applicant's fields, which of them the model reads,
their valid ranges, the names of the models, and the points scale (the orchestrator, the
`credit_features` backend and export share them).

Fields are the Taiwan data set's columns in lower case (UCI 350, Yeh & Lien 2009). `sex` and
`marriage` are asked of every applicant but are not model inputs (lending regulation): they
are stored for the fairness report, which measures the model by them.
"""

import math
from dataclasses import dataclass

import numpy as np

from contracts.versions import BASE_VERSION, step_file, step_reference_file, versioned_model_name

CREDIT_FEATURES_MODEL = "credit_features"
CREDIT_MODEL = "credit_model"
CREDIT_ENSEMBLE = "credit_scoring"
CREDIT_MODELS = (CREDIT_FEATURES_MODEL, CREDIT_MODEL, CREDIT_ENSEMBLE)
CREDIT_FILE = f"{CREDIT_MODEL}/1/model.onnx"
# What drift compares recent scorings with, written beside the model by `export credit`: each
# feature's and the probability's decile bins on the training split, and their shares.
CREDIT_REFERENCE_FILE = f"{CREDIT_MODEL}/1/reference.json"
CREDIT_MAX_BATCH = 1000
# Served credit versions, laid out as contracts/versions.py says: version 1 is what `export
# credit` writes, served by `credit_scoring`; version v is credit_model's version v, published
# by `python -m export credit-publish` with an ensemble of its own, `credit_scoring_v<v>`.
BASE_CREDIT_VERSION = BASE_VERSION
# What credit_features' error message starts with, for the orchestrator to recognise
BAD_APPLICANT = "bad applicant: "


def credit_model_name(version: int) -> str:
    """The ensemble that serves credit version `version`."""
    return versioned_model_name(CREDIT_ENSEMBLE, version)


def credit_file(version: int) -> str:
    return step_file(CREDIT_MODEL, version)


def credit_reference_file(version: int) -> str:
    return step_reference_file(CREDIT_MODEL, version)


@dataclass(frozen=True)
class Field:
    name: str
    low: int
    high: int
    words: str  # what the field is, in a reason
    model_input: bool = True


MONTHS = ("last month", "2 months ago", "3 months ago", "4 months ago", "5 months ago",
          "6 months ago")  # fmt: skip
MONEY = 10_000_000  # NT dollars: far above any amount in the data, a bound on typing errors
FIELDS = (
    Field("limit_bal", 1, MONEY, "credit limit"),
    Field("sex", 1, 2, "sex", model_input=False),
    Field("education", 0, 6, "education level"),
    Field("marriage", 0, 3, "marital status", model_input=False),
    Field("age", 18, 120, "age"),
    # repayment status: -2 no consumption, -1 paid in full, 0 revolving, 1..9 months late
    *(
        Field(f"pay_{m}", -2, 9, f"repayment status {MONTHS[i]}")
        for i, m in enumerate((0, 2, 3, 4, 5, 6))
    ),
    *(Field(f"bill_amt{i}", -MONEY, MONEY, f"bill amount {MONTHS[i - 1]}") for i in range(1, 7)),
    *(Field(f"pay_amt{i}", 0, MONEY, f"amount paid {MONTHS[i - 1]}") for i in range(1, 7)),
)
FIELD_NAMES = tuple(f.name for f in FIELDS)
# The model's inputs, in the order of its `features` tensor
FEATURES = tuple(f.name for f in FIELDS if f.model_input)
BY_NAME = {f.name: f for f in FIELDS}

# The points scale: 600 points at odds of 50 good to 1 bad, 20 more points each time the odds
# double (the usual scorecard convention); clipped to [300, 850].
SCORE_BASE, SCORE_BASE_ODDS, POINTS_TO_DOUBLE = 600.0, 50.0, 20.0
SCORE_RANGE = (300, 850)


def score(probability_of_default: float) -> int:
    p = min(max(probability_of_default, 1e-9), 1 - 1e-9)
    points = SCORE_BASE + POINTS_TO_DOUBLE / math.log(2) * math.log((1 - p) / p / SCORE_BASE_ODDS)
    return round(min(max(points, SCORE_RANGE[0]), SCORE_RANGE[1]))


LOWS = np.array([f.low for f in FIELDS], dtype=np.int64)
HIGHS = np.array([f.high for f in FIELDS], dtype=np.int64)
INPUT_COLUMNS = np.array([f.model_input for f in FIELDS])


def range_errors(fields: np.ndarray, limit: int = 5) -> list[str]:
    """`fields` int64 [N, len(FIELDS)]: the first `limit` out-of-range values, as
    "applicant i: name must be from low to high"; [] when every value is in range."""
    if fields.ndim != 2 or fields.shape[1] != len(FIELDS):
        return [f"expected {len(FIELDS)} fields per applicant, got shape {list(fields.shape)}"]
    rows, columns = np.nonzero((fields < LOWS) | (fields > HIGHS))
    return [
        f"applicant {row}: {FIELDS[column].name} must be from {FIELDS[column].low} to "
        f"{FIELDS[column].high}"
        for row, column in list(zip(rows, columns, strict=True))[:limit]
    ]


def model_features(fields: np.ndarray) -> np.ndarray:
    """The model's input from the fields [N, len(FIELDS)]: the FEATURES columns, float32."""
    return fields[:, INPUT_COLUMNS].astype(np.float32)


def fields_row(applicant: dict) -> list[int]:
    """A checked applicant (schemas/credit.py Applicant) as one row of FIELD_NAMES."""
    return [applicant[name] for name in FIELD_NAMES]


# ---- decisions under a cost matrix -----------------------------------------------------------
# A tenant's costs: a wrongly approved defaulter, a wrongly declined good applicant, and a
# manual review (taken to find the truth). For a calibrated probability of default p the
# cheapest action is approve (expected cost p * accept_bad), decline ((1 - p) * refuse_good) or
# review (review): approve below review / accept_bad, decline from 1 - review / refuse_good,
# review in between. Where a review never pays, the band closes at the break-even point
# refuse_good / (refuse_good + accept_bad), and there is no review.

# German credit's cost matrix (accepting a bad applicant costs 5, refusing a good one 1), and
# a review at half a refused good applicant's cost: what a tenant meets before setting its own
DEFAULT_COSTS = {"cost_accept_bad": 5.0, "cost_refuse_good": 1.0, "cost_review": 0.5}


@dataclass(frozen=True)
class Thresholds:
    approve_below: float
    decline_from: float

    def decision(self, probability: float) -> str:
        if probability < self.approve_below:
            return "approve"
        return "decline" if probability >= self.decline_from else "review"


def thresholds(cost_accept_bad: float, cost_refuse_good: float, cost_review: float) -> Thresholds:
    break_even = cost_refuse_good / (cost_refuse_good + cost_accept_bad)
    approve_below = cost_review / cost_accept_bad
    decline_from = 1 - cost_review / cost_refuse_good
    if approve_below >= break_even or decline_from <= break_even:
        return Thresholds(break_even, break_even)
    return Thresholds(approve_below, decline_from)


# ---- drift: the population stability index ----------------------------------------------------
# PSI = sum over bins of (recent share - reference share) * ln(recent share / reference share),
# bins from the training split's deciles. The usual reading: under 0.1 stable, 0.1 to 0.25 a
# shift worth a look (warning), 0.25 and over a population the model was not made for.
PSI_WARNING, PSI_CRITICAL = 0.1, 0.25
PSI_FLOOR = 1e-4  # an empty bin's share, so that the logarithm stays finite


def decile_edges(values: np.ndarray) -> np.ndarray:
    """The distinct cut points of `values` at its deciles (value > edge: the next bin)."""
    return np.unique(np.quantile(values, np.linspace(0.1, 0.9, 9), method="lower"))


def bin_shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    bins = (np.asarray(values, dtype=np.float64)[:, None] > edges[None, :]).sum(axis=1)
    return np.bincount(bins, minlength=len(edges) + 1) / max(1, len(values))


def psi(reference: np.ndarray, recent: np.ndarray) -> float:
    reference, recent = np.maximum(reference, PSI_FLOOR), np.maximum(recent, PSI_FLOOR)
    return float(np.sum((recent - reference) * np.log(recent / reference)))


def psi_level(value: float) -> str:
    if value >= PSI_CRITICAL:
        return "critical"
    return "warning" if value >= PSI_WARNING else "ok"
