"""`export tune-vote`'s pieces: the held-out tenth, and scoring a vote's settings."""

import numpy as np
import pytest

from export.__main__ import main
from export.data import Split
from export.rerank import RerankSettings, index_of
from export.tune import Scoring, held_out_rows


def test_a_seeded_tenth_of_every_intent_is_held_out():
    split = Split([f"t{i}" for i in range(230)], [i % 3 for i in range(200)] + [3] * 30)
    held = held_out_rows(split, seed=13)
    assert held == held_out_rows(split, seed=13) != held_out_rows(split, seed=14)
    per_intent = np.bincount([split.labels[i] for i in held])
    assert per_intent.tolist() == [6, 6, 6, 3]  # a tenth of 67, 67, 66 and 30, rounded down


def test_the_vote_can_fix_what_the_head_gets_wrong_and_weight_zero_is_the_head():
    examples = Split(["a", "b"], [0, 1])
    queries = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    split = Split(["x", "y"], [0, 1])
    wrong_head = np.array([[0.4, 0.6], [0.6, 0.4]], dtype=np.float32)
    lexical = wrong_head  # a lexical view as wrong as the head
    scored = Scoring(split, wrong_head, queries, index_of(queries, examples.labels), lexical)
    assert scored.accuracy(RerankSettings(neighbours=1, weight=0.0)) == 0.0
    assert scored.accuracy(RerankSettings(neighbours=1, weight=0.5)) == 1.0
    assert scored.accuracy(RerankSettings(neighbours=1, weight=0.5), lexical_weight=1.0) == 0.0


def test_the_lexical_view_can_fix_what_the_head_and_the_vote_get_wrong():
    examples = Split(["a", "b"], [0, 1])
    queries = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    wrong_head = np.array([[0.4, 0.6], [0.6, 0.4]], dtype=np.float32)
    right_lexical = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    index = index_of(queries[::-1], examples.labels)  # the vote points the wrong way too
    scored = Scoring(Split(["x", "y"], [0, 1]), wrong_head, queries, index, right_lexical)
    assert scored.accuracy(RerankSettings(neighbours=1, weight=0.5)) == 0.0
    assert scored.accuracy(RerankSettings(neighbours=1, weight=0.5), lexical_weight=0.5) == 1.0


def test_the_packaged_head_can_fix_what_the_fine_tuned_head_gets_wrong():
    examples = Split(["a", "b"], [0, 1])
    queries = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    wrong_head = np.array([[0.4, 0.6], [0.6, 0.4]], dtype=np.float32)
    right_packaged = np.array([[0.9, 0.1], [0.1, 0.9]], dtype=np.float32)
    index = index_of(queries[::-1], examples.labels)  # the vote points the wrong way
    split = Split(["x", "y"], [0, 1])
    scored = Scoring(split, wrong_head, queries, index, wrong_head, right_packaged)
    chosen = RerankSettings(neighbours=1, weight=0.0)
    assert scored.accuracy(chosen) == 0.0
    assert scored.accuracy(chosen, packaged_weight=0.5) == 1.0
    assert scored.rows(1, 2).accuracy(chosen, packaged_weight=0.5) == 1.0
    assert scored.rows(1, 2).split == Split(["y"], [1])


@pytest.mark.parametrize("average_last", ["0", "3"])
def test_an_average_of_no_epochs_or_more_than_trained_is_refused_first(average_last, capsys):
    assert main(["tune-vote", "--epochs", "2", "--average-last", average_last]) == 2
    assert f"--average-last is between 1 and the epochs, not {average_last}" in (
        capsys.readouterr().out
    )
