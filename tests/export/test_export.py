"""The export pipeline: parity with PyTorch, INT8, the TensorRT step, the repository it writes."""

import json

import onnx
import pytest
import torch

from contracts.models import GENERATED_FILES, missing_files
from export.data import load_banking77
from export.model import load_checkpoint, load_tokenizer
from export.onnx_export import ParityError, build_classifier, check_parity
from export.tensorrt import unavailable_reason


def test_build_writes_every_generated_file_next_to_the_committed_configs(built_repository):
    repository, summary = built_repository
    assert missing_files(repository) == []
    for model in ("ticket_tokenizer", "ticket_encoder", "ticket_classifier", "ticket_triage"):
        assert (repository / model / "config.pbtxt").is_file()
    assert set(GENERATED_FILES) <= set(summary["files"])


def test_onnx_matches_pytorch_within_tolerance(built_repository):
    parity = built_repository[1]["parity"]
    assert parity["max_embedding_diff"] <= 1e-4
    assert parity["max_score_diff"] <= 1e-4
    assert parity["cases"] >= 40


def test_int8_encoder_is_smaller_and_its_accuracy_drop_is_reported(built_repository):
    repository, summary = built_repository
    fp32 = (repository / "ticket_encoder/1/model.onnx").stat().st_size
    int8 = (repository / "ticket_encoder/2/model.onnx").stat().st_size
    assert int8 < fp32 / 3
    accuracy = summary["onnx_test_accuracy_in_process"]
    assert summary["int8_accuracy_drop_points"] == round(
        100 * (accuracy["fp32"] - accuracy["int8"]), 2
    )


def test_tensorrt_step_says_why_it_was_skipped(built_repository):
    reason = unavailable_reason()
    if reason is None:
        pytest.skip("TensorRT and a GPU are present here; the engine was built instead")
    assert built_repository[1]["tensorrt"] == f"TensorRT build skipped: {reason}"


def test_build_report_is_saved(export_settings, built_repository):
    saved = json.loads((export_settings.work_dir / "build_report.json").read_text())
    assert saved["parity"] == built_repository[1]["parity"]


def test_parity_check_fails_loudly_when_the_export_is_wrong(
    export_settings, built_repository, tmp_path
):
    model, intents, max_length = load_checkpoint(export_settings.work_dir / "intent_model.pt")
    texts = load_banking77(export_settings.banking77_dir).test.texts[:40]
    tampered = tmp_path / "classifier.onnx"
    with torch.no_grad():
        model.head.bias += 0.5 * torch.randn_like(model.head.bias)
        build_classifier(model, intents, tampered)
        model.head.bias.zero_()  # PyTorch now differs from the file just written
    with pytest.raises(ParityError, match="scores differ"):
        check_parity(
            model,
            load_tokenizer(max_length),
            intents,
            export_settings.work_dir / "encoder.fp32.onnx",
            tampered,
            texts,
        )


@pytest.mark.slow  # exports and quantizes the packaged encoder, embeds 1,232 texts: about 50 s
def test_the_quick_recipe_serves_the_packaged_encoder_and_the_vote_lifts_its_head(
    export_settings, tmp_path
):
    """No fine-tuning (epochs 0): the head trains on the packaged encoder's INT8 embeddings,
    the fused file holds that one encoder for both the head and the vote, and the vote with
    the lexical view is better than the head alone on test texts the head never saw (16
    training texts per intent here; the full quick build: see README, "Triage accuracy")."""
    from export.build import BuildOptions, Steps, intent_predictions, onnx_accuracy
    from export.build import train_and_export as run
    from export.lexical import lexical_for
    from export.rerank import vote_for
    from export.settings import ExportSettings

    data = load_banking77(export_settings.banking77_dir)
    settings = ExportSettings(work_dir=tmp_path)
    options = BuildOptions(epochs=0, train_per_label=16, rerank=vote_for(0), lexical=lexical_for(0))
    train, test = data.train.head_per_label(16), data.test.spread(400)
    exported = run(settings, options, train, test.head(40), data.intents, Steps(3))
    assert exported.train_report.epochs == 0
    assert exported.train_report.train_examples == len(train)
    fused = onnx.load(str(exported.paths["intent"]))
    assert not any(n.name.startswith("example_encoder/") for n in fused.graph.node)
    head = onnx_accuracy(
        exported.paths["encoder_int8"],
        exported.paths["classifier"],
        exported.tokenizer,
        test,
        data.intents,
    )
    served = intent_predictions(exported.paths["intent"], test.texts).intents
    voted = sum(data.intents[y] == p for y, p in zip(test.labels, served, strict=True))
    print(f"quick recipe, 16 texts per intent: head {head:.4f}, with the vote {voted / 400:.4f}")
    assert head > 0.5
    assert voted / len(test) > head


@pytest.mark.slow  # exports and quantizes both encoders again, embeds 1,232 texts: about 40 s
def test_a_build_from_a_checkpoint_serves_the_trained_model_without_training_it_again(
    built_repository, export_settings, tmp_path
):
    """`export build --checkpoint`: the steps after training run on the saved weights, and
    the fused file answers as the build that trained them."""
    from dataclasses import replace

    from export.build import Steps, intent_predictions
    from export.build import train_and_export as run
    from export.settings import ExportSettings
    from tests.conftest import TEST_BUILD

    data = load_banking77(export_settings.banking77_dir)
    options = replace(TEST_BUILD, checkpoint=export_settings.work_dir / "intent_model.pt")
    train = data.train.head_per_label(TEST_BUILD.train_per_label)
    settings = ExportSettings(work_dir=tmp_path)
    exported = run(settings, options, train, data.test.head(40), data.intents, Steps(3))
    assert exported.train_report.seconds == 0.0
    texts = data.test.spread(64).texts
    again = intent_predictions(exported.paths["intent"], texts)
    served = intent_predictions(built_repository[0] / "ticket_intent/1/model.onnx", texts)
    assert again.intents == served.intents
    with pytest.raises(ValueError, match="other intents"):
        run(settings, options, train, data.test.head(40), data.intents[::-1], Steps(3))


def test_build_refuses_a_checkpoint_it_cannot_use(tmp_path, capsys):
    from export.__main__ import main

    assert main(["build", "--quick", "--checkpoint", str(tmp_path / "x.pt")]) == 2
    assert "fine-tunes nothing" in capsys.readouterr().out
    assert main(["build", "--epochs", "6", "--checkpoint", str(tmp_path / "x.pt")]) == 2
    assert "no checkpoint at" in capsys.readouterr().out
