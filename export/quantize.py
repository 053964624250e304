"""Dynamic INT8 quantization of the encoder (weights INT8, activations quantized on the fly)."""

from pathlib import Path

from onnxruntime.quantization import QuantType, quantize_dynamic


def quantize_encoder(fp32_path: Path, int8_path: Path) -> None:
    int8_path.parent.mkdir(parents=True, exist_ok=True)
    quantize_dynamic(str(fp32_path), str(int8_path), weight_type=QuantType.QInt8)
