"""`python -m export build`: train, export, check, quantize and install the triage models."""

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer
from tqdm import tqdm

from contracts.models import SERVED_MAX_TOKENS
from export.data import Split, load_banking77
from export.device import set_device
from export.fuse import TEXT_INPUT, fuse
from export.lexical import DEFAULT_LEXICAL, LexicalSettings, fit_lexical, token_ids
from export.model import (
    IntentModel,
    batch_encode,
    load_checkpoint,
    load_tokenizer,
    save_checkpoint,
)
from export.onnx_export import (
    ParityReport,
    build_classifier,
    check_parity,
    export_encoder,
    export_packaged_encoder,
    ort_session,
)
from export.packaged import encoder_dir
from export.quantize import quantize_encoder
from export.repository import write_models
from export.rerank import (
    DEFAULT_RERANK,
    RerankSettings,
    build_index,
    embed_texts,
    index_of,
)
from export.settings import ExportSettings
from export.tensorrt import build_engine
from export.train import HeadConfig, TrainConfig, TrainReport, train, train_head


@dataclass(frozen=True)
class BuildOptions:
    # 0: no fine-tuning: the head is trained on the packaged encoder's embeddings, and that
    # encoder serves (the quick recipe: minutes, not half an hour)
    epochs: int = 2
    train_per_label: int | None = None  # a balanced subset, for fast test builds
    test_limit: int | None = None
    max_length: int = 64
    tensorrt: bool = True
    # Blend the head with a vote of the nearest training texts by the packaged encoder's
    # embeddings (export/rerank.py); None: the head alone
    rerank: RerankSettings | None = DEFAULT_RERANK
    # Blend in the lexical view: TF-IDF of the word pieces, logistic regression
    # (export/lexical.py); None: without it
    lexical: LexicalSettings | None = DEFAULT_LEXICAL
    # A fine-tuned model an earlier build saved (intent_model.pt): exported again instead of
    # training anew, for a change to the steps after training
    checkpoint: Path | None = None


@dataclass
class Exported:
    """What `train_and_export` made: the ONNX files, and how training and the parity check went."""

    paths: dict[str, Path]  # encoder_fp32, encoder_int8, classifier, intent (write_models')
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
    """Train the model, export and quantize the encoder, build the classifier, check parity,
    fuse what serves into one file.

    The steps shared by `build` and `retrain`; `step` announces each of the three.
    """
    work = settings.work_dir
    paths = {
        "encoder_fp32": work / "encoder.fp32.onnx",
        "encoder_int8": work / "encoder.int8.onnx",
        "classifier": work / "classifier.onnx",
        "intent": work / "intent.onnx",
    }
    packaged = {"fp32": work / "packaged.fp32.onnx", "int8": work / "packaged.int8.onnx"}
    served_tokenizer = load_tokenizer(SERVED_MAX_TOKENS)
    index = None
    if options.epochs:
        if options.checkpoint:
            step(f"reading the fine-tuned model {options.checkpoint}")
            model, train_report = _trained(options.checkpoint, intents, len(train_split))
        else:
            step(f"fine-tuning on {len(train_split)} texts, {options.epochs} epoch(s)")
            config = TrainConfig(
                epochs=options.epochs, max_length=options.max_length, seed=settings.seed
            )
            model, train_report = train(train_split, len(intents), config, test_split)
        step("exporting the encoder to ONNX and quantizing it to dynamic INT8")
        export_encoder(model, paths["encoder_fp32"])
        quantize_encoder(paths["encoder_fp32"], paths["encoder_int8"])
        if options.rerank is not None:
            export_packaged_encoder(packaged["fp32"], packaged["int8"])
            index = build_index(packaged["int8"], served_tokenizer, train_split)
    else:
        step("exporting the packaged encoder to ONNX and quantizing it to dynamic INT8")
        export_packaged_encoder(paths["encoder_fp32"], paths["encoder_int8"])
        packaged = {"fp32": paths["encoder_fp32"], "int8": paths["encoder_int8"]}
        step(f"training the intent head on {len(train_split)} texts' embeddings (INT8)")
        embeddings = embed_texts(paths["encoder_int8"], served_tokenizer, train_split.texts)
        model, train_report = train_head(
            embeddings, train_split.labels, len(intents), HeadConfig(seed=settings.seed)
        )
        index = index_of(embeddings, train_split.labels) if options.rerank else None
    save_checkpoint(model, intents, options.max_length, work / "intent_model.pt")

    lexical = None
    if options.lexical is not None:
        ids = token_ids(served_tokenizer, train_split.texts)
        lexical = fit_lexical(ids, train_split.labels, len(intents), options.lexical)
    votes = f", with a vote of {len(index)} training texts" if index else ""
    votes += f", the lexical view of {len(lexical.ngrams)} word pieces and pairs" if lexical else ""
    step(f"building the classifier{votes}; parity with PyTorch (tolerance 1e-4); fusing")
    tokenizer = load_tokenizer(options.max_length)
    build_classifier(model, intents, paths["classifier"], None)
    check = {
        "model": model,
        "tokenizer": tokenizer,
        "intents": intents,
        "encoder_path": paths["encoder_fp32"],
        "texts": test_split.texts[:40],
    }
    parity = check_parity(**check, classifier_path=paths["classifier"])
    served_classifier = paths["classifier"]
    if index is not None or lexical is not None:
        served_classifier = work / "classifier.served.onnx"
        build_classifier(model, intents, served_classifier, index, options.rerank, lexical)
        check_parity(
            **check,
            classifier_path=served_classifier,
            index=index,
            rerank=options.rerank,
            example_encoder=packaged["int8"] if index is not None else None,
            lexical=lexical,
        )
    # What serves: the tokenizer, the encoder(s) and the classifier, as one file; INT8 on a
    # CPU, fp32 on a GPU (where TensorRT makes it fp16)
    precision = "fp32" if settings.device == "gpu" else "int8"
    fuse(
        paths[f"encoder_{precision}"],
        served_classifier,
        encoder_dir() / "vocab.txt",
        paths["intent"],
        example_encoder=packaged[precision] if options.epochs and index else None,
    )
    return Exported(paths, train_report, parity, tokenizer)


def _trained(checkpoint: Path, intents: list[str], texts: int) -> tuple[IntentModel, TrainReport]:
    model, saved_intents, _ = load_checkpoint(checkpoint)
    if saved_intents != intents:
        raise ValueError(f"{checkpoint} was trained on other intents than this data set's")
    return model, TrainReport(epochs=0, train_examples=texts, seconds=0.0)


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
    served = intent_predictions(paths["intent"], test_split.texts).intents
    accuracy["served"] = hits(served, test_split, data.intents) / len(test_split)

    step("TensorRT engine")
    trt = build_engine(paths["encoder_fp32"], repository) if options.tensorrt else None
    trt_detail = trt.detail if trt else "TensorRT build skipped: not requested (--no-tensorrt)"
    print(trt_detail, flush=True)

    step(f"writing the model repository at {repository}")
    written = write_models(repository, **paths)
    if settings.device == "gpu":
        set_device(repository, "gpu", settings.gpu_accelerator)
    summary = {
        "train": asdict(exported.train_report),
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(options).items()},
        "parity": asdict(exported.parity),
        # fp32 and int8: the encoder and the head (the chained steps); served: the fused file
        "onnx_test_accuracy_in_process": {k: round(v, 4) for k, v in accuracy.items()},
        "int8_accuracy_drop_points": round(100 * (accuracy["fp32"] - accuracy["int8"]), 2),
        "test_texts": len(test_split),
        "tensorrt": trt_detail,
        "device": settings.device,
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
    """Run the exported encoder and head on `texts` (the chained steps' model)."""
    encoder_session, classifier_session = ort_session(encoder), ort_session(classifier)

    def predict(batch: list[str]):
        ids, mask = batch_encode(tokenizer, batch)
        feeds = {"input_ids": ids.numpy(), "attention_mask": mask.numpy()}
        embedding = encoder_session.run(None, feeds)[0]
        return classifier_session.run(["intent"], {"embedding": embedding})[0][:, 0]

    return _grouped_predictions(predict, texts, batch_size, encoder.name)


def intent_predictions(
    intent: Path, texts: list[str], batch_size: int = 32, providers: list | None = None
) -> Predictions:
    """Run the fused file (text → intent: what serves) on `texts`, on the CPU or on
    `providers` (contracts.runtime.gpu_providers)."""
    session = ort_session(intent, providers=providers)

    def predict(batch: list[str]):
        feed = np.array(batch, dtype=object).reshape(-1, 1)
        return session.run(["intent"], {TEXT_INPUT: feed})[0][:, 0]

    return _grouped_predictions(predict, texts, batch_size, intent.name)


def _grouped_predictions(
    predict: Callable[[list[str]], Sequence], texts: list[str], batch_size: int, name: str
) -> Predictions:
    """`predict` over `texts` in batches grouped by length (less padding), each batch timed;
    the intents in `texts` order."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    intents: list[str] = [""] * len(texts)
    seconds: list[float] = []
    for start in tqdm(range(0, len(order), batch_size), desc=f"predicting {name}", leave=False):
        rows = order[start : start + batch_size]
        began = time.perf_counter()
        predicted = predict([texts[i] for i in rows])
        seconds.append(time.perf_counter() - began)
        for i, intent in zip(rows, predicted, strict=True):
            intents[i] = str(intent)
    return Predictions(intents, seconds)


def hits(predicted: list[str], split: Split, intents: list[str]) -> int:
    return sum(intents[label] == p for label, p in zip(split.labels, predicted, strict=True))


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
    return hits(predicted, split, intents) / len(split)


class Steps:
    """Numbered progress lines, `== 2/7 exporting ...`, flushed so that logs show them live."""

    def __init__(self, total: int):
        self.total, self.done = total, 0

    def __call__(self, message: str) -> None:
        self.done += 1
        print(f"\n== {self.done}/{self.total} {message}", flush=True)
