"""`python -m export credit`: the Taiwan split, the models' ONNX files (their logits equal to
LightGBM's and the scorecard's own, their contributions adding up to them), the metrics, the
reasons check, and a small build through the command; the contract's field checks and points."""

import json

import lightgbm as lgb
import numpy as np
import pytest

from contracts.credit import (
    CREDIT_FILE,
    FEATURES,
    FIELD_NAMES,
    fields_row,
    model_features,
    range_errors,
    score,
)
from export.__main__ import main
from export.credit.data import load_german, load_taiwan
from export.credit.fairness import fairness_report, write_report
from export.credit.metrics import cost_threshold, expected_cost, ks_statistic
from export.credit.onnx_files import outputs, scorecard_model, tree_model
from export.credit.train import train_scorecard


@pytest.fixture(scope="module")
def splits(export_settings):
    return load_taiwan(export_settings.credit_dir)


def test_the_split_is_fixed_and_the_protected_fields_are_not_inputs(splits, export_settings):
    assert {name: len(s) for name, s in splits.items()} == {
        "train": 20000,
        "val": 4000,
        "test": 6000,
    }
    assert "sex" in FIELD_NAMES and "marriage" in FIELD_NAMES
    assert "sex" not in FEATURES and "marriage" not in FEATURES
    assert splits["test"].features.shape == (6000, len(FEATURES))
    assert 0.2 < splits["test"].labels.mean() < 0.23
    german = load_german(export_settings.credit_dir)
    assert german.features.shape == (1000, 19) and german.labels.mean() == 0.3
    assert "personal_status_sex" not in german.feature_names


def test_the_trees_file_answers_as_lightgbm_with_contributions_that_add_up(splits, tmp_path):
    train, test = splits["train"].head(3000), splits["test"].head(2000)
    model = lgb.LGBMClassifier(n_estimators=40, num_leaves=15, use_missing=False, verbose=-1)
    model.fit(train.features, train.labels)
    tree_model(model.booster_, tmp_path / "trees.onnx")
    answered = outputs(tmp_path / "trees.onnx", test.features)
    raw = model.booster_.predict(test.features, raw_score=True)
    assert np.abs(answered["logit"][:, 0] - raw).max() < 1e-4
    assert np.allclose(answered["probability"][:, 0], 1 / (1 + np.exp(-raw)), atol=1e-5)
    bias = answered["logit"][:, 0] - answered["contributions"].sum(axis=1)
    assert np.ptp(bias) < 1e-4  # the same bias for everyone: the trees' root values
    assert answered["contributions"].shape == (2000, len(FEATURES))


def test_the_scorecard_file_answers_as_its_points_table(splits, tmp_path):
    card = train_scorecard(splits["train"].head(5000))
    scorecard_model(card.edges, card.points, card.bias, tmp_path / "card.onnx")
    test = splits["test"].head(1000).features
    answered = outputs(tmp_path / "card.onnx", test)
    assert np.abs(answered["logit"][:, 0] - card.logit(test)).max() < 1e-4
    assert np.abs(answered["contributions"] - card.contributions(test)).max() < 1e-5


def test_the_fairness_report_measures_each_group_and_the_gaps(splits, export_settings, tmp_path):
    train = splits["train"].head(3000)
    model = lgb.LGBMClassifier(n_estimators=30, num_leaves=7, use_missing=False, verbose=-1)
    model.fit(train.features, train.labels)
    tree_model(model.booster_, tmp_path / "trees.onnx")
    report = fairness_report(export_settings, tmp_path / "trees.onnx")
    assert set(report["by"]) == {"sex", "marriage", "age_band"}
    sexes = report["by"]["sex"]["groups"]
    assert sexes["male"]["applicants"] + sexes["female"]["applicants"] == 6000
    assert report["by"]["marriage"]["groups"]["not given"].keys() == {"applicants"}  # too few
    for found in report["by"].values():
        for metric, gap in found["gaps"].items():
            values = [g[metric] for g in found["groups"].values() if g.get(metric) is not None]
            assert gap == pytest.approx(max(values) - min(values), abs=1e-4)
    assert 0 < report["everyone"]["approval_rate"] < 1
    written, chart = write_report(report, tmp_path / "fairness.json")
    assert json.loads(written.read_text())["policy"]["approve_below"] == 0.1
    assert chart.read_bytes().startswith(b"\x89PNG")


def test_ks_and_the_cost_of_a_decision():
    labels = np.array([0, 0, 0, 1, 1, 1])
    assert ks_statistic(np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9]), labels) == 1.0
    assert ks_statistic(np.array([0.5] * 6), labels) == 0.0
    assert cost_threshold(5, 1) == pytest.approx(1 / 6)
    probabilities = np.array([0.1, 0.1, 0.3, 0.1, 0.5, 0.9])
    # accepted below 1/6: three applicants, one of them bad (5); refused good: one (1)
    assert expected_cost(probabilities, labels, 1 / 6, 5, 1) == pytest.approx(6 / 6)


def test_a_small_build_through_the_command(export_settings, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EXPORT_WORK_DIR", str(tmp_path / "work"))
    repository = tmp_path / "repository"
    argv = ["credit", "--quick", "--train-limit", "5000", "--repository", str(repository)]
    assert main(argv) == 0
    assert (repository / CREDIT_FILE).is_file()
    summary = json.loads((tmp_path / "work" / "credit" / "credit_summary.json").read_text())
    trees, card = summary["test"]["trees"], summary["test"]["scorecard"]
    assert trees["auc"] > 0.75 and card["auc"] > 0.72
    assert trees["reasons"]["lowered_share"] > 0.85, trees["reasons"]
    assert summary["int8"]["trees"]["quantized"] is False
    costs = summary["german"]["cost_per_applicant"]
    assert min(costs["trees"], costs["scorecard"]) < min(costs["approve_all"], costs["refuse_all"])
    assert main([*argv, "--if-missing"]) == 0
    assert "nothing to do" in capsys.readouterr().out


def test_out_of_range_fields_are_named_and_the_points_follow_the_risk():
    applicant = dict.fromkeys(FIELD_NAMES, 0) | {"limit_bal": 50000, "sex": 1, "age": 30}
    rows = np.array([fields_row(applicant), fields_row(applicant | {"age": 12, "pay_0": 10})])
    assert range_errors(rows[:1]) == []
    assert range_errors(rows) == [
        "applicant 1: age must be from 18 to 120",
        "applicant 1: pay_0 must be from -2 to 9",
    ]
    assert range_errors(rows[:, :5])[0].startswith("expected 23 fields")
    assert model_features(rows).shape == (2, len(FEATURES))
    assert score(0.01) > score(0.1) > score(0.5) >= 300
    assert score(1 / 51) == 600 and score(0.0) == 850 and score(1.0) == 300
