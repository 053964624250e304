"""A Python-based Triton backend named `onnxruntime` running ONNX files with onnxruntime.

The wheel's tritonserver has no native ONNX Runtime backend. With this file installed as
`<backend-dir>/onnxruntime/model.py`, configs say `backend: "onnxruntime"` exactly as they do
for NGC's container, so one model repository serves both. It reads the model file where the
native backend does (`<model>/<version>/model.onnx`) and honours its thread parameters and its
instance kind: KIND_GPU runs on CUDA, or TensorRT fp16 where the config asks for it
(export/device.py), and fails to load, saying why, where onnxruntime has no such provider.

Dynamic batching hands `execute` several requests; those with equal shapes are stacked, run
once and split again, one response per request, in order. A model whose config sets
`max_text_bytes` takes its string inputs as ticket_tokenizer takes texts (contracts/tokens.py:
too long, not UTF-8 or empty is refused, in that request alone): ticket_intent, whose graph
tokenizes the whole text before cutting it to 128 tokens.
"""

import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils

# This backend serves only the wheel's local Triton, whose Python is the project's venv.
from contracts.runtime import ProviderUnavailable, instance_providers, ort_session
from contracts.tokens import BadText, checked_texts


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        self.model_name = config["name"]
        self.batched = int(config.get("max_batch_size", 0)) > 0
        self.input_names = [tensor["name"] for tensor in config["input"]]
        self.output_names = [tensor["name"] for tensor in config["output"]]
        self.string_outputs = {
            tensor["name"] for tensor in config["output"] if tensor["data_type"] == "TYPE_STRING"
        }
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        self.max_text_bytes = int(params.get("max_text_bytes", "0")) or None
        filename = config.get("default_model_filename") or "model.onnx"
        path = Path(args["model_repository"]) / args["model_version"] / filename
        if not path.is_file():
            raise pb_utils.TritonModelException(f"{self.model_name}: no model file at {path}")
        kind = args.get("model_instance_kind", "CPU")  # KIND_GPU: CUDA or TensorRT
        providers = instance_providers(config, kind, int(args.get("model_instance_device_id", 0)))
        try:
            self.session = ort_session(
                path,
                intra_op_threads=int(params.get("intra_op_thread_count", "0")),  # 0: all cores
                inter_op_threads=int(params.get("inter_op_thread_count", "1")),
                providers=providers,
            )
        except ProviderUnavailable as error:
            raise pb_utils.TritonModelException(f"{self.model_name} on {kind}: {error}") from None

    def execute(self, requests):
        responses: list = [None] * len(requests)
        arrays = {}
        for i, request in enumerate(requests):
            try:
                arrays[i] = self._inputs(request)
            except BadText as error:  # this request alone is refused
                responses[i] = _error(str(error), invalid_argument=True)
        for indices, feeds in self._stacked_groups(arrays):
            try:
                results = self.session.run(self.output_names, feeds)
            except Exception as error:  # a failed run answers its own requests, not the batch's
                for i in indices:
                    responses[i] = _error(f"{self.model_name}: {error}")
                continue
            self._split(results, indices, requests, responses)
        return responses

    def _inputs(self, request) -> dict[str, np.ndarray]:
        feeds = {}
        for name in self.input_names:
            array = pb_utils.get_input_tensor_by_name(request, name).as_numpy()
            if array.dtype == object and self.max_text_bytes:
                texts = checked_texts(array.reshape(-1), self.max_text_bytes)
                feeds[name] = np.array(texts, dtype=object).reshape(array.shape)
            else:
                feeds[name] = _as_ort_input(array)
        return feeds

    def _stacked_groups(self, arrays: dict[int, dict[str, np.ndarray]]):
        """Yield (request indices, feeds) for each set of requests whose inputs share a shape."""
        if not self.batched:
            for i, feeds in arrays.items():
                yield [i], feeds
            return
        groups = defaultdict(list)
        for i, feeds in arrays.items():
            groups[tuple(feeds[name].shape[1:] for name in self.input_names)].append(i)
        for indices in groups.values():
            if len(indices) == 1:
                yield indices, arrays[indices[0]]
            else:
                stacked = {
                    n: np.concatenate([arrays[i][n] for i in indices]) for n in self.input_names
                }
                yield indices, stacked

    def _split(self, results, indices, requests, responses):
        offset = 0
        for i in indices:
            rows = _batch_rows(requests[i], self.input_names[0]) if self.batched else None
            tensors = []
            for name, value in zip(self.output_names, results, strict=True):
                part = value[offset : offset + rows] if self.batched else value
                if name in self.string_outputs:
                    part = np.array(
                        [s.encode() if isinstance(s, str) else s for s in part.reshape(-1)],
                        dtype=object,
                    ).reshape(part.shape)
                tensors.append(pb_utils.Tensor(name, part))
            offset += rows or 0
            responses[i] = pb_utils.InferenceResponse(output_tensors=tensors)


def _as_ort_input(array: np.ndarray) -> np.ndarray:
    if array.dtype == object:  # BYTES arrive as bytes; ONNX string tensors want str
        return np.array([v.decode() for v in array.reshape(-1)], dtype=object).reshape(array.shape)
    return array


def _batch_rows(request, input_name: str) -> int:
    return pb_utils.get_input_tensor_by_name(request, input_name).as_numpy().shape[0]


def _error(message: str, invalid_argument: bool = False):
    """An error response; a client's mistake is INVALID_ARG (HTTP 400) where Triton has codes."""
    code = getattr(pb_utils.TritonError, "INVALID_ARG", None) if invalid_argument else None
    error = (
        pb_utils.TritonError(message, code) if code is not None else pb_utils.TritonError(message)
    )
    return pb_utils.InferenceResponse(error=error)
