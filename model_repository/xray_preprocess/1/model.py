"""xray_preprocess: image bytes → the classifier's input, one image per row, with its brightness
and contrast (the image statistics drift compares).

A request may carry several images ([N, 1] BYTES); a bad one fails its request alone, with
Triton's INVALID_ARG and the reason, and the other requests of the batch carry on.
"""

import numpy as np
import triton_python_backend_utils as pb_utils

# Installed in Triton's Python: the project's venv locally, copied into the Triton image.
from contracts.images import BAD_IMAGE, BadImage, image_statistics, model_input


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            raw = pb_utils.get_input_tensor_by_name(request, "image").as_numpy().reshape(-1)
            try:
                pixels = np.stack([model_input(bytes(item)) for item in raw])
            except BadImage as error:
                responses.append(
                    pb_utils.InferenceResponse(error=_invalid_argument(f"{BAD_IMAGE}{error}"))
                )
                continue
            mean, std = image_statistics(pixels)
            outputs = [
                pb_utils.Tensor("pixels", pixels),
                pb_utils.Tensor("image_mean", mean.reshape(-1, 1)),
                pb_utils.Tensor("image_std", std.reshape(-1, 1)),
            ]
            responses.append(pb_utils.InferenceResponse(output_tensors=outputs))
        return responses


def _invalid_argument(message: str):
    """A client's mistake: INVALID_ARG (HTTP 400) where this Triton supports codes."""
    code = getattr(pb_utils.TritonError, "INVALID_ARG", None)
    return (
        pb_utils.TritonError(message, code) if code is not None else pb_utils.TritonError(message)
    )
