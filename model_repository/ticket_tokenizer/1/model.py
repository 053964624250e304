"""ticket_tokenizer: ticket text → token ids and attention mask, padded to a length bucket.

Each request holds one or more texts ([N, 1] BYTES). Its texts are padded together to the
smallest bucket (16, 32, 64, 128 tokens) that fits the longest of them, so that requests of
similar length share a shape and the encoder's dynamic batcher can stack them without
padding every short ticket to 128 tokens.
"""

import json
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils

# Installed in Triton's Python: the project's venv locally, copied into the Triton image.
from contracts.tokens import BadText, checked_texts, load_tokenizer, pad_batch


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        self.max_tokens = int(params.get("max_sequence_length", "128"))
        # No default: the config holds contracts.models.MAX_TEXT_BYTES (a test keeps them equal),
        # and a second copy of the number here could drift from it.
        self.max_text_bytes = int(params["max_text_bytes"])
        self.buckets = sorted(int(b) for b in params.get("pad_buckets", "16,32,64,128").split(","))
        if self.buckets[-1] < self.max_tokens:
            self.buckets.append(self.max_tokens)
        folder = Path(args["model_repository"]) / args["model_version"]
        self.tokenizer = load_tokenizer(folder / "tokenizer.json", self.max_tokens)

    def execute(self, requests):
        responses = []
        for request in requests:
            try:
                texts = self._texts(request)
                ids, mask = self._encode(texts)
            except BadText as error:
                responses.append(pb_utils.InferenceResponse(error=_invalid_argument(str(error))))
                continue
            responses.append(
                pb_utils.InferenceResponse(
                    output_tensors=[
                        pb_utils.Tensor("input_ids", ids),
                        pb_utils.Tensor("attention_mask", mask),
                    ]
                )
            )
        return responses

    def _texts(self, request) -> list[str]:
        raw = pb_utils.get_input_tensor_by_name(request, "text").as_numpy().reshape(-1)
        return checked_texts(raw, self.max_text_bytes)

    def _encode(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        rows = [e.ids for e in self.tokenizer.encode_batch(texts)]
        longest = max(len(row) for row in rows)
        return pad_batch(rows, next(b for b in self.buckets if b >= longest))


def _invalid_argument(message: str):
    """A client's mistake: INVALID_ARG (HTTP 400) where this Triton supports codes."""
    code = getattr(pb_utils.TritonError, "INVALID_ARG", None)
    return (
        pb_utils.TritonError(message, code) if code is not None else pb_utils.TritonError(message)
    )
