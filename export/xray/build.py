"""`python -m export xray`: train the classifier, export it to ONNX (fp32 and INT8), check parity,
choose the temperature and threshold on the validation split, report the test split, and
install the served file as `xray_classifier`."""

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from contracts.images import image_statistics, normalise
from contracts.runtime import ort_session
from contracts.xray import SIZE, XRAY_FILE, XRAY_REFERENCE_FILE
from export.repository import copy_into, ensure_configs
from export.settings import ExportSettings
from export.tensorrt import serialize_engine
from export.xray.data import ImageSplit, load_pneumoniamnist
from export.xray.metrics import balanced_threshold, fit_temperature, report
from export.xray.onnx_files import (
    INPUT,
    export_logit,
    onnx_logits,
    quantize_int8,
    served_outputs,
    with_decision,
)
from export.xray.train import XrayTrainConfig, predict_logits, train_xray

# Logits of the ONNX file against PyTorch's, on the validation split
PARITY_TOLERANCE = 1e-4
# INT8 serves when it loses at most this much balanced accuracy and AUC on the validation split
INT8_TOLERANCE = 0.01
ENGINE_PROFILE = ((1, 1, SIZE, SIZE), (16, 1, SIZE, SIZE), (64, 1, SIZE, SIZE))


@dataclass(frozen=True)
class XrayBuildOptions:
    epochs: int = XrayTrainConfig.epochs
    train_limit: int | None = None  # the first N training images only, for fast test builds
    tensorrt: bool = True


@dataclass(frozen=True)
class TrainedXray:
    """A trained classifier's served file with what was measured of it."""

    file: Path  # the served variant's ONNX file (with its temperature and threshold)
    reference: Path  # its drift reference
    summary: dict  # training, parity, the variants' scores, the served one, TensorRT


def build_xray(
    settings: ExportSettings, options: XrayBuildOptions, repository: Path | None = None
) -> dict:
    """The whole pipeline; returns the summary it also writes as `xray_summary.json`."""
    repository = repository or settings.model_repository
    work = settings.work_dir / "xray"
    splits = load_pneumoniamnist(settings.pneumoniamnist_dir)
    train = splits["train"].head(options.train_limit)
    trained = train_and_export(settings, options, train, splits, work, steps=3)

    print(f"== 3/3 installing the {trained.summary['served']} file as {XRAY_FILE}", flush=True)
    ensure_configs(repository)
    copy_into(repository, {XRAY_FILE: trained.file, XRAY_REFERENCE_FILE: trained.reference})
    summary = {**trained.summary, "repository": str(repository)}
    (work / "xray_summary.json").write_text(json.dumps(summary, indent=2))
    served = summary["variants"][summary["served"]]
    print(
        json.dumps(
            {k: summary[k] for k in ("served", "tensorrt")} | {"test": served["test"]}, indent=2
        )
    )
    return summary


def train_and_export(
    settings: ExportSettings,
    options: XrayBuildOptions,
    train: ImageSplit,
    splits: dict[str, ImageSplit],
    work: Path,
    *,
    steps: int,
) -> TrainedXray:
    """Train on `train`, select on the validation split, export fp32 and INT8, check parity,
    choose each one's temperature and threshold, score the test split, and keep INT8 where it
    kept its accuracy. Prints steps 1 and 2 of `steps`."""
    work.mkdir(parents=True, exist_ok=True)
    val, test = splits["val"], splits["test"]
    config = XrayTrainConfig(epochs=options.epochs, seed=settings.seed)
    print(f"== 1/{steps} training on {len(train)} x-rays, {config.epochs} epochs", flush=True)
    model, train_report = train_xray(train, val, config)

    print(f"== 2/{steps} exporting to ONNX, INT8 quantization, parity", flush=True)
    logits = {"fp32": work / "xray.logit.fp32.onnx", "int8": work / "xray.logit.int8.onnx"}
    export_logit(model, logits["fp32"])
    parity = float(
        np.abs(onnx_logits(logits["fp32"], val.images) - predict_logits(model, val.images)).max()
    )
    if parity > PARITY_TOLERANCE:
        raise RuntimeError(f"ONNX logits differ from PyTorch's by {parity:.2e}")
    quantize_int8(logits["fp32"], logits["int8"], train.images)
    variants = {
        name: _decide_and_score(path, work / f"xray.{name}.onnx", val, test)
        for name, path in logits.items()
    }
    served = _served_variant(variants)
    engine = _tensorrt(variants["fp32"]["file"], work) if options.tensorrt else "not asked for"
    file = Path(variants[served]["file"])
    summary = {
        "dataset": "PneumoniaMNIST (MedMNIST v2), 28 x 28",
        "training": asdict(train_report),
        "parity_max_abs_logit_difference": parity,
        "variants": variants,
        "served": served,
        "int8_test_accuracy_drop_points": round(
            100 * (variants["fp32"]["test"]["accuracy"] - variants["int8"]["test"]["accuracy"]), 2
        ),
        "tensorrt": engine,
    }
    reference = _drift_reference(work, file, splits["train"], val)
    return TrainedXray(file, reference, summary)


def _decide_and_score(logit_file: Path, file: Path, val: ImageSplit, test: ImageSplit) -> dict:
    """Temperature and threshold chosen on the validation split for this file, written into it,
    then the test split scored once through it."""
    val_logits = onnx_logits(logit_file, val.images)
    temperature = fit_temperature(val_logits, val.labels)
    threshold = balanced_threshold(1 / (1 + np.exp(-val_logits / temperature)), val.labels)
    with_decision(logit_file, file, temperature, threshold)
    scored = {}
    for name, split in (("val", val), ("test", test)):
        outputs = served_outputs(file, split.images)
        scored[name] = report(outputs["probability"], split.labels, threshold)
    return {
        "file": str(file),
        "temperature": round(temperature, 4),
        "threshold": round(threshold, 4),
        "images_per_second_one_at_a_time": _speed(file, test.images),
        **scored,
    }


def _drift_reference(work: Path, served: Path, train: ImageSplit, val: ImageSplit) -> Path:
    """What drift compares recent diagnoses with: every training image's brightness and
    contrast, and the served file's probabilities on the validation split."""
    mean, std = image_statistics(normalise(train.images))
    reference = {
        "image_mean": np.round(mean, 5).tolist(),
        "image_std": np.round(std, 5).tolist(),
        "probability": np.round(served_outputs(served, val.images)["probability"], 6).tolist(),
    }
    path = work / "xray_reference.json"
    path.write_text(json.dumps(reference))
    return path


def _served_variant(variants: dict) -> str:
    fp32, int8 = variants["fp32"]["val"], variants["int8"]["val"]
    close = (
        fp32["balanced_accuracy"] - int8["balanced_accuracy"] <= INT8_TOLERANCE
        and fp32["auc"] - int8["auc"] <= INT8_TOLERANCE
    )
    return "int8" if close else "fp32"


def _speed(file: Path, images: np.ndarray, count: int = 200) -> float:
    """Images per second through the file in process, one image per call (the median of 3)."""
    session, inputs = ort_session(file), normalise(images[:count])
    rates = []
    for _ in range(3):
        started = time.perf_counter()
        for row in inputs:
            session.run(None, {INPUT: row[None]})
        rates.append(len(inputs) / (time.perf_counter() - started))
    return round(float(np.median(rates)), 1)


def _tensorrt(onnx_file: str, work: Path) -> str:
    serialized, detail = serialize_engine(Path(onnx_file), {INPUT: ENGINE_PROFILE})
    if serialized is not None:
        (work / "xray.fp16.plan").write_bytes(serialized)
    return detail
