"""The x-ray classifier's export: its metrics, the decision appended to the ONNX file, and the
test build (`python -m export xray`'s code on 512 training images, tests/conftest.py)."""

import json

import numpy as np
import pytest
import torch

from contracts.xray import XRAY_FILE, XRAY_REFERENCE_FILE
from export.xray.data import load_pneumoniamnist
from export.xray.metrics import (
    auc,
    balanced_threshold,
    expected_calibration_error,
    fit_temperature,
    report,
)
from export.xray.model import XrayNet
from export.xray.onnx_files import export_logit, onnx_logits, served_outputs, with_decision
from export.xray.train import predict_logits

RNG = np.random.default_rng(3)


def test_auc_is_the_share_of_correctly_ordered_pairs():
    scores = RNG.random(60)
    labels = (RNG.random(60) < 0.4).astype(np.int64)
    scores[:5] = scores[5]  # ties count half
    pairs = [
        1.0 if p > n else 0.5 if p == n else 0.0
        for p in scores[labels == 1]
        for n in scores[labels == 0]
    ]
    assert auc(scores, labels) == pytest.approx(np.mean(pairs))


def test_the_threshold_is_the_best_balanced_accuracy_and_sorts_as_its_score():
    probabilities = np.array([0.1, 0.2, 0.3, 0.6, 0.7, 0.8, 0.9, 0.95])
    labels = np.array([0, 0, 1, 0, 1, 1, 1, 1])
    threshold = balanced_threshold(probabilities, labels)
    best = report(probabilities, labels, threshold)["balanced_accuracy"]
    for t in np.linspace(0, 1, 101):
        assert report(probabilities, labels, t)["balanced_accuracy"] <= best + 1e-9
    assert threshold == pytest.approx(0.65)  # halfway between 0.6 (negative) and 0.7


def test_calibration_error_and_temperature():
    labels = (RNG.random(4000) < 0.5).astype(np.int64)
    true_logits = RNG.normal(0, 2, 4000) + np.where(labels == 1, 1.5, -1.5)
    probabilities = 1 / (1 + np.exp(-true_logits))
    # labels drawn from the probabilities themselves: calibrated
    drawn = (RNG.random(4000) < probabilities).astype(np.int64)
    assert expected_calibration_error(probabilities, drawn) < 0.03
    # three times too confident: the fitted temperature undoes it
    assert fit_temperature(true_logits * 3, drawn) == pytest.approx(3.0, rel=0.15)
    assert expected_calibration_error(1 / (1 + np.exp(-3 * true_logits)), drawn) > 0.05


def test_the_decision_outputs_follow_the_logit(tmp_path):
    torch.manual_seed(0)
    model = XrayNet(width=8).eval()
    images = RNG.integers(0, 256, (20, 28, 28), dtype=np.uint8)
    export_logit(model, tmp_path / "logit.onnx")
    logits = onnx_logits(tmp_path / "logit.onnx", images)
    np.testing.assert_allclose(logits, predict_logits(model, images), atol=1e-5)
    threshold = float(np.median(1 / (1 + np.exp(-logits / 2.0))))
    with_decision(tmp_path / "logit.onnx", tmp_path / "served.onnx", 2.0, threshold)
    out = served_outputs(tmp_path / "served.onnx", images)
    np.testing.assert_allclose(out["probability"], 1 / (1 + np.exp(-logits / 2.0)), atol=1e-6)
    np.testing.assert_array_equal(out["label"], (out["probability"] >= threshold).astype(int))
    np.testing.assert_allclose(out["threshold"], threshold)
    assert 0 < out["label"].sum() < len(images)


def test_the_data_is_read_in_place(export_settings):
    splits = load_pneumoniamnist(export_settings.pneumoniamnist_dir)
    assert {name: len(split) for name, split in splits.items()} == {
        "train": 4708,
        "val": 524,
        "test": 624,
    }
    assert splits["test"].labels.mean() == pytest.approx(390 / 624)


def test_the_normalisation_constants_are_the_training_splits(export_settings):
    from contracts.xray import PIXEL_MEAN, PIXEL_STD

    train = load_pneumoniamnist(export_settings.pneumoniamnist_dir)["train"].images / 255.0
    assert train.mean() == pytest.approx(PIXEL_MEAN, abs=1e-3)
    assert train.std() == pytest.approx(PIXEL_STD, abs=1e-3)


def test_the_test_build_installs_a_checked_classifier(built_repository, export_settings):
    repository, _ = built_repository
    assert (repository / XRAY_FILE).is_file()
    summary = json.loads((export_settings.work_dir / "xray" / "xray_summary.json").read_text())
    assert summary["parity_max_abs_logit_difference"] < 1e-4
    assert summary["served"] in ("fp32", "int8")
    for variant in summary["variants"].values():
        test = variant["test"]
        assert test["images"] == 624
        assert set(test) >= {"accuracy", "auc", "sensitivity", "specificity", "ece", "confusion"}
        assert test["auc"] > 0.8  # 2 epochs on 512 images already rank most cases right
    assert "skipped" in summary["tensorrt"] or "built" in summary["tensorrt"]
    reference = json.loads((repository / XRAY_REFERENCE_FILE).read_text())
    assert (
        len(reference["image_mean"]) == len(reference["image_std"]) == 4708
    )  # every training image
    assert len(reference["probability"]) == 524  # the validation split
    assert 0.4 < np.median(reference["image_mean"]) < 0.7
