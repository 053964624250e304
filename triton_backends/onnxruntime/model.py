"""A Python-based Triton backend named `onnxruntime` running ONNX files with onnxruntime.

The wheel's tritonserver has no native ONNX Runtime backend. With this file installed as
`<backend-dir>/onnxruntime/model.py`, configs say `backend: "onnxruntime"` exactly as they do
for NGC's container, so one model repository serves both. It reads the model file where the
native backend does (`<model>/<version>/model.onnx`) and honours its thread parameters.

Dynamic batching hands `execute` several requests; those with equal shapes are stacked, run
once and split again, one response per request, in order.
"""

import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils

# This backend serves only the wheel's local Triton, whose Python is the project's venv.
from contracts.runtime import ort_session


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
        filename = config.get("default_model_filename") or "model.onnx"
        path = Path(args["model_repository"]) / args["model_version"] / filename
        if not path.is_file():
            raise pb_utils.TritonModelException(f"{self.model_name}: no model file at {path}")
        self.session = ort_session(
            path,
            intra_op_threads=int(params.get("intra_op_thread_count", "0")),  # 0: usable cores
            inter_op_threads=int(params.get("inter_op_thread_count", "1")),
        )

    def execute(self, requests):
        responses: list = [None] * len(requests)
        for indices, feeds in self._stacked_groups(requests):
            try:
                results = self.session.run(self.output_names, feeds)
            except Exception as error:  # a failed run answers its own requests, not the batch's
                for i in indices:
                    responses[i] = _error(f"{self.model_name}: {error}")
                continue
            self._split(results, indices, requests, responses)
        return responses

    def _stacked_groups(self, requests):
        """Yield (request indices, feeds) for each set of requests whose inputs share a shape."""
        arrays = [
            {
                name: _as_ort_input(pb_utils.get_input_tensor_by_name(r, name))
                for name in self.input_names
            }
            for r in requests
        ]
        if not self.batched:
            for i, feeds in enumerate(arrays):
                yield [i], feeds
            return
        groups = defaultdict(list)
        for i, feeds in enumerate(arrays):
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


def _as_ort_input(tensor) -> np.ndarray:
    array = tensor.as_numpy()
    if array.dtype == object:  # BYTES arrive as bytes; ONNX string tensors want str
        return np.array([v.decode() for v in array.reshape(-1)], dtype=object).reshape(array.shape)
    return array


def _batch_rows(request, input_name: str) -> int:
    return pb_utils.get_input_tensor_by_name(request, input_name).as_numpy().shape[0]


def _error(message: str):
    return pb_utils.InferenceResponse(error=pb_utils.TritonError(message))
