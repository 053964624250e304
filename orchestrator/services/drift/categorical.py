"""A two-sample test for categories that stays honest on sparse mixes, registered with Evidently.

Evidently's default for a category (chi-square against the reference's proportions taken as
exact) ignores that the reference is itself a sample: between two samples of one uniform
77-intent mix it answered p = 1e-5. Its "TVD" test is the right idea, the total variation
distance with a permutation test, but builds Python lists and pandas Series per permutation
and runs three times per column in a report (measured: 32 s of an 82 s run on 2 cores). This
is the same test on integer codes with numpy: milliseconds, and seeded, so runs repeat.

The permutations also give what a distance is worth on samples this small: two samples of one
mix of 77 intents lie about 0.5 apart by chance at 50 texts and 0.2 at 500 (measured), so the
prediction drift score is the distance in excess of the permutations' mean (`excess`).
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd
from evidently.legacy.calculations.stattests.registry import StatTest, register_stattest
from evidently.legacy.core import ColumnType

NAME = "tvd_permutation"
PERMUTATIONS = 1000
SEED = 0


def tvd(reference_counts: np.ndarray, current_counts: np.ndarray) -> np.ndarray:
    """Total variation distance between count vectors (the last axis holds the categories)."""
    reference = reference_counts / reference_counts.sum(axis=-1, keepdims=True)
    current = current_counts / current_counts.sum(axis=-1, keepdims=True)
    return 0.5 * np.abs(reference - current).sum(axis=-1)


@dataclass(frozen=True)
class TVDTest:
    distance: float  # observed total variation distance, 0..1
    excess: float  # minus its mean over the permutations (what chance alone gives)
    p_value: float  # share of permutations at least as far apart


def tvd_test(reference: pd.Series, current: pd.Series, permutations: int = PERMUTATIONS) -> TVDTest:
    """The distance of the two samples' mixes and how often shuffled labels reach it."""
    codes, _ = pd.factorize(pd.concat([reference, current], ignore_index=True).astype(str))
    n_ref, k = len(reference), codes.max() + 1
    observed = tvd(np.bincount(codes[:n_ref], minlength=k), np.bincount(codes[n_ref:], minlength=k))
    shuffled = np.random.default_rng(SEED).permuted(np.tile(codes, (permutations, 1)), axis=1)
    offsets = (np.arange(permutations) * k)[:, None]
    ref_counts = np.bincount((shuffled[:, :n_ref] + offsets).ravel(), minlength=permutations * k)
    cur_counts = np.bincount((shuffled[:, n_ref:] + offsets).ravel(), minlength=permutations * k)
    distances = tvd(ref_counts.reshape(permutations, k), cur_counts.reshape(permutations, k))
    p_value = float(np.mean(distances >= observed - 1e-12))
    return TVDTest(float(observed), float(observed - distances.mean()), p_value)


def _test(reference: pd.Series, current: pd.Series, _feature_type, threshold: float):
    p_value = tvd_test(reference, current).p_value
    return p_value, p_value < threshold


TVD_PERMUTATION = StatTest(
    name=NAME,
    display_name="total variation distance, permutation p_value",
    allowed_feature_types=[ColumnType.Categorical],
    default_threshold=0.01,
)
register_stattest(TVD_PERMUTATION, default_impl=_test)
