"""`python -m export build`: train, export, check, quantize and install the triage models."""

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer
from tqdm import tqdm

from contracts.models import SERVED_MAX_TOKENS
from export.data import Split, load_banking77
from export.fuse import fuse
from export.model import batch_encode, load_tokenizer, save_checkpoint
from export.onnx_export import (
    ParityReport,
    build_classifier,
    check_parity,
    export_encoder,
    ort_session,
)
from export.packaged import encoder_dir
from export.quantize import quantize_encoder
from export.repository import write_models
from export.rerank import RerankSettings, build_index
from export.settings import ExportSettings
from export.tensorrt import build_engine
from export.train import TrainConfig, TrainReport, train


@dataclass(frozen=True)
class BuildOptions:
    epochs: int = 2
    train_per_label: int | None = None  # a balanced subset, for fast test builds
    test_limit: int | None = None
    max_length: int = 64
    tensorrt: bool = True
    # Blend the head with a vote of the nearest training texts (export/rerank.py); None: the
    # head alone, the default: with the fine-tuned encoder's own embeddings the vote gained
    # nothing on test (README, "Triage accuracy")
    rerank: RerankSettings | None = None


@dataclass
class Exported:
    """What `train_and_export` made: the ONNX files, and how training and the parity check went."""

    paths: dict[str, Path]  # encoder_fp32, encoder_int8, classifier (write_models' arguments)
    train_report: TrainReport
    parity: ParityReport
    tokenizer: Tokenizer


def train_and_export(
    settings: ExportSettings,
    options: BuildOptions,
    train_split: Split,
    test_split: Split,
    intents: list[str],
    step: Callable[[str], None],
) -> Exported:
    """Fine-tune, export and quantize the encoder, build the classifier, check parity.

    The steps shared by `build` and `retrain`; `step` announces each of the three.
    """
    work = settings.work_dir
    step(f"fine-tuning on {len(train_split)} texts, {options.epochs} epoch(s)")
    config = TrainConfig(epochs=options.epochs, max_length=options.max_length, seed=settings.seed)
    model, train_report = train(train_split, len(intents), config, test_split)
    save_checkpoint(model, intents, options.max_length, work / "intent_model.pt")

    step("exporting the encoder to ONNX and quantizing it to dynamic INT8")
    paths = {
        "encoder_fp32": work / "encoder.fp32.onnx",
        "encoder_int8": work / "encoder.int8.onnx",
        "classifier": work / "classifier.onnx",
        "intent": work / "intent.onnx",
    }
    export_encoder(model, paths["encoder_fp32"])
    quantize_encoder(paths["encoder_fp32"], paths["encoder_int8"])

    examples = f" with {len(train_split)} example texts" if options.rerank else ""
    step(f"building the classifier{examples}; parity with PyTorch (tolerance 1e-4); fusing")
    tokenizer = load_tokenizer(options.max_length)
    index = None
    if options.rerank is not None:  # the served encoder (INT8) reads them as served texts
        served_tokenizer = load_tokenizer(SERVED_MAX_TOKENS)
        index = build_index(paths["encoder_int8"], served_tokenizer, train_split)
    build_classifier(model, intents, paths["classifier"], index, options.rerank)
    parity = check_parity(
        model,
        tokenizer,
        intents,
        paths["encoder_fp32"],
        paths["classifier"],
        test_split.texts[:40],
        index=index,
        rerank=options.rerank,
    )
    # What serves: the INT8 encoder and the classifier, with the tokenizer, as one file
    fuse(paths["encoder_int8"], paths["classifier"], encoder_dir() / "vocab.txt", paths["intent"])
    return Exported(paths, train_report, parity, tokenizer)


def build(settings: ExportSettings, options: BuildOptions, repository: Path) -> dict:
    """Run every step, print progress, and return (and save) the summary."""
    started = time.perf_counter()
    torch.set_num_threads(settings.torch_threads)
    data = load_banking77(settings.banking77_dir)
    train_split = data.train
    if options.train_per_label:
        train_split = train_split.head_per_label(options.train_per_label)
    test_split = data.test.head(options.test_limit)
    step = Steps(5)
    exported = train_and_export(settings, options, train_split, test_split, data.intents, step)
    paths = exported.paths
    accuracy = {
        precision: onnx_accuracy(
            paths[f"encoder_{precision}"],
            paths["classifier"],
            exported.tokenizer,
            test_split,
            data.intents,
        )
        for precision in ("fp32", "int8")
    }

    step("TensorRT engine")
    trt = build_engine(paths["encoder_fp32"], repository) if options.tensorrt else None
    trt_detail = trt.detail if trt else "TensorRT build skipped: not requested (--no-tensorrt)"
    print(trt_detail, flush=True)

    step(f"writing the model repository at {repository}")
    written = write_models(repository, **paths)
    summary = {
        "train": asdict(exported.train_report),
        "options": asdict(options),
        "parity": asdict(exported.parity),
        "onnx_test_accuracy_in_process": {k: round(v, 4) for k, v in accuracy.items()},
        "int8_accuracy_drop_points": round(100 * (accuracy["fp32"] - accuracy["int8"]), 2),
        "test_texts": len(test_split),
        "tensorrt": trt_detail,
        "files": {str(p.relative_to(repository)): p.stat().st_size for p in written},
        "seconds": round(time.perf_counter() - started, 1),
    }
    (settings.work_dir / "build_report.json").write_text(json.dumps(summary, indent=2))
    return summary


@dataclass(frozen=True)
class Predictions:
    """The top intent of every text, in the split's order, and the seconds each batch took."""

    intents: list[str]
    batch_seconds: list[float]


def onnx_predictions(
    encoder: Path,
    classifier: Path,
    tokenizer,
    texts: list[str],
    batch_size: int = 32,
) -> Predictions:
    """Run the exported files on `texts`, grouped by length to avoid padding waste."""
    encoder_session, classifier_session = ort_session(encoder), ort_session(classifier)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    intents: list[str] = [""] * len(texts)
    seconds: list[float] = []
    for start in tqdm(
        range(0, len(order), batch_size), desc=f"predicting {encoder.name}", leave=False
    ):
        rows = order[start : start + batch_size]
        began = time.perf_counter()
        ids, mask = batch_encode(tokenizer, [texts[i] for i in rows])
        embedding = encoder_session.run(
            None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()}
        )[0]
        predicted = classifier_session.run(["intent"], {"embedding": embedding})[0][:, 0]
        seconds.append(time.perf_counter() - began)
        for i, intent in zip(rows, predicted, strict=True):
            intents[i] = str(intent)
    return Predictions(intents, seconds)


def onnx_accuracy(
    encoder: Path,
    classifier: Path,
    tokenizer,
    split: Split,
    intents: list[str],
    batch_size: int = 32,
) -> float:
    """Accuracy of the exported files on a split."""
    predicted = onnx_predictions(encoder, classifier, tokenizer, split.texts, batch_size).intents
    hits = sum(intents[label] == p for label, p in zip(split.labels, predicted, strict=True))
    return hits / len(split)


class Steps:
    """Numbered progress lines, `== 2/7 exporting ...`, flushed so that logs show them live."""

    def __init__(self, total: int):
        self.total, self.done = total, 0

    def __call__(self, message: str) -> None:
        self.done += 1
        print(f"\n== {self.done}/{self.total} {message}", flush=True)
