"""The classifier as ONNX: the network's logit exported with a dynamic batch axis, an INT8
copy quantized statically on training images, and the decision appended to each file (the
temperature, the pneumonia probability, the label at the validation-chosen threshold)."""

from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper
from onnxruntime.quantization import (
    CalibrationDataReader,
    QuantFormat,
    QuantType,
    quantize_static,
)

from contracts.images import normalise
from contracts.runtime import ort_session
from contracts.xray import SIZE
from export.xray.model import XrayNet

OPSET = 17
INPUT = "image"
LOGIT = "logit"
OUTPUTS = ("probability", "label", "threshold")
CALIBRATION_IMAGES = 512


def export_logit(model: XrayNet, path: Path) -> None:
    """The network alone: normalised image [B, 1, 28, 28] → logit [B, 1]."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        model.eval(),
        (torch.zeros((2, 1, SIZE, SIZE)),),
        str(path),
        input_names=[INPUT],
        output_names=[LOGIT],
        dynamic_axes={INPUT: {0: "batch"}, LOGIT: {0: "batch"}},
        opset_version=OPSET,
        dynamo=False,
    )


class _Calibration(CalibrationDataReader):
    def __init__(self, images: np.ndarray, batch_size: int = 64):
        self.batches = iter(
            normalise(images[i : i + batch_size]) for i in range(0, len(images), batch_size)
        )

    def get_next(self) -> dict | None:
        batch = next(self.batches, None)
        return None if batch is None else {INPUT: batch}


def quantize_int8(fp32_path: Path, int8_path: Path, calibration: np.ndarray) -> None:
    """Static INT8 (QDQ, per-channel weights): a convolution network gains nothing from dynamic
    quantization, which leaves convolutions in float."""
    int8_path.parent.mkdir(parents=True, exist_ok=True)
    quantize_static(
        str(fp32_path),
        str(int8_path),
        _Calibration(calibration[:CALIBRATION_IMAGES]),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
    )


def onnx_logits(path: Path, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """The file's logits (or probabilities, for a file with the decision) for uint8 images."""
    session = ort_session(path)
    name = session.get_outputs()[0].name
    out = [
        session.run([name], {INPUT: normalise(images[i : i + batch_size])})[0].reshape(-1)
        for i in range(0, len(images), batch_size)
    ]
    return np.concatenate(out)


def with_decision(logit_path: Path, path: Path, temperature: float, threshold: float) -> None:
    """Append probability = sigmoid(logit / temperature), label = probability >= threshold
    (0 normal, 1 pneumonia) and the threshold itself, one row per image."""
    model = onnx.load(str(logit_path))
    graph = model.graph
    graph.initializer.extend(
        [
            helper.make_tensor("temperature", TensorProto.FLOAT, [], [temperature]),
            helper.make_tensor("decision_threshold", TensorProto.FLOAT, [], [threshold]),
        ]
    )
    graph.node.extend(
        [
            helper.make_node("Div", [LOGIT, "temperature"], ["scaled_logit"]),
            helper.make_node("Sigmoid", ["scaled_logit"], ["probability"]),
            helper.make_node("GreaterOrEqual", ["probability", "decision_threshold"], ["positive"]),
            helper.make_node("Cast", ["positive"], ["label"], to=TensorProto.INT64),
            helper.make_node("Shape", ["probability"], ["rows"]),
            helper.make_node("Expand", ["decision_threshold", "rows"], ["threshold"]),
        ]
    )
    del graph.output[:]
    graph.output.extend(
        [
            helper.make_tensor_value_info("probability", TensorProto.FLOAT, ["batch", 1]),
            helper.make_tensor_value_info("label", TensorProto.INT64, ["batch", 1]),
            helper.make_tensor_value_info("threshold", TensorProto.FLOAT, ["batch", 1]),
        ]
    )
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))


def served_outputs(path: Path, images: np.ndarray) -> dict[str, np.ndarray]:
    """What a file with the decision answers for uint8 images, flat per output."""
    session = ort_session(path)
    results = session.run(list(OUTPUTS), {INPUT: normalise(images)})
    return {name: value.reshape(-1) for name, value in zip(OUTPUTS, results, strict=True)}
