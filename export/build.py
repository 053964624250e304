"""`python -m export build`: train, export, check, quantize and install the triage models."""

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from export.data import Split, load_banking77
from export.model import batch_encode, load_tokenizer, save_checkpoint
from export.onnx_export import build_classifier, check_parity, export_encoder, ort_session
from export.quantize import quantize_encoder
from export.repository import write_models
from export.settings import ExportSettings
from export.tensorrt import build_engine
from export.train import TrainConfig, train


@dataclass(frozen=True)
class BuildOptions:
    epochs: int = 2
    train_per_label: int | None = None  # a balanced subset, for fast test builds
    test_limit: int | None = None
    max_length: int = 64
    tensorrt: bool = True


def build(settings: ExportSettings, options: BuildOptions, repository: Path) -> dict:
    """Run every step, print progress, and return (and save) the summary."""
    started = time.perf_counter()
    torch.set_num_threads(settings.torch_threads)
    data = load_banking77(settings.banking77_dir)
    train_split = data.train
    if options.train_per_label:
        train_split = train_split.head_per_label(options.train_per_label)
    test_split = data.test
    if options.test_limit:
        test_split = Split(
            test_split.texts[: options.test_limit], test_split.labels[: options.test_limit]
        )
    work = settings.work_dir
    _step(f"1/5 fine-tuning on {len(train_split)} texts, {options.epochs} epoch(s)")
    config = TrainConfig(epochs=options.epochs, max_length=options.max_length, seed=settings.seed)
    model, train_report = train(train_split, len(data.intents), config, test_split)
    save_checkpoint(model, data.intents, options.max_length, work / "intent_model.pt")

    _step("2/5 exporting ONNX and checking parity with PyTorch (tolerance 1e-4)")
    paths = {
        "encoder_fp32": work / "encoder.fp32.onnx",
        "encoder_int8": work / "encoder.int8.onnx",
        "classifier": work / "classifier.onnx",
    }
    export_encoder(model, paths["encoder_fp32"])
    build_classifier(model, data.intents, paths["classifier"])
    tokenizer = load_tokenizer(options.max_length)
    parity = check_parity(
        model,
        tokenizer,
        data.intents,
        paths["encoder_fp32"],
        paths["classifier"],
        test_split.texts[:40],
    )

    _step("3/5 quantizing the encoder to dynamic INT8")
    quantize_encoder(paths["encoder_fp32"], paths["encoder_int8"])
    accuracy = {
        precision: onnx_accuracy(
            paths[f"encoder_{precision}"], paths["classifier"], tokenizer, test_split, data.intents
        )
        for precision in ("fp32", "int8")
    }

    _step("4/5 TensorRT engine")
    trt = build_engine(paths["encoder_fp32"], repository) if options.tensorrt else None
    trt_detail = trt.detail if trt else "TensorRT build skipped: not requested (--no-tensorrt)"
    print(trt_detail, flush=True)

    _step(f"5/5 writing the model repository at {repository}")
    written = write_models(repository, **paths)
    summary = {
        "train": asdict(train_report),
        "options": asdict(options),
        "parity": asdict(parity),
        "onnx_test_accuracy_in_process": {k: round(v, 4) for k, v in accuracy.items()},
        "int8_accuracy_drop_points": round(100 * (accuracy["fp32"] - accuracy["int8"]), 2),
        "test_texts": len(test_split),
        "tensorrt": trt_detail,
        "files": {str(p.relative_to(repository)): p.stat().st_size for p in written},
        "seconds": round(time.perf_counter() - started, 1),
    }
    (work / "build_report.json").write_text(json.dumps(summary, indent=2))
    return summary


def onnx_accuracy(
    encoder: Path,
    classifier: Path,
    tokenizer,
    split: Split,
    intents: list[str],
    batch_size: int = 32,
) -> float:
    """Accuracy of the exported files on a split, texts grouped by length to avoid padding waste."""
    encoder_session, classifier_session = ort_session(encoder), ort_session(classifier)
    order = sorted(range(len(split)), key=lambda i: len(split.texts[i]))
    hits = 0
    for start in tqdm(
        range(0, len(order), batch_size), desc=f"accuracy {encoder.name}", leave=False
    ):
        rows = order[start : start + batch_size]
        ids, mask = batch_encode(tokenizer, [split.texts[i] for i in rows])
        embedding = encoder_session.run(
            None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()}
        )[0]
        predicted = classifier_session.run(["intent"], {"embedding": embedding})[0][:, 0]
        hits += sum(
            intents[split.labels[i]] == str(p) for i, p in zip(rows, predicted, strict=True)
        )
    return hits / len(split)


def _step(message: str) -> None:
    print(f"\n== {message}", flush=True)
