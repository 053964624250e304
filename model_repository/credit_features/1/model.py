"""credit_features: applicants' fields → the credit model's features, one applicant per row.

A request whose applicant has a field out of range fails alone, with Triton's INVALID_ARG
naming the row and the field; the other requests of the batch carry on. The orchestrator
checks the same ranges first (contracts/credit.py) and answers 422; this guards callers that
reach Triton directly.
"""

import numpy as np
import triton_python_backend_utils as pb_utils

# Installed in Triton's Python: the project's venv locally, copied into the Triton image.
from contracts.credit import BAD_APPLICANT, model_features, range_errors


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            fields = pb_utils.get_input_tensor_by_name(request, "fields").as_numpy()
            errors = range_errors(fields)
            if errors:
                message = f"{BAD_APPLICANT}{'; '.join(errors)}"
                responses.append(pb_utils.InferenceResponse(error=_invalid_argument(message)))
                continue
            features = pb_utils.Tensor("features", model_features(fields).astype(np.float32))
            responses.append(pb_utils.InferenceResponse(output_tensors=[features]))
        return responses


def _invalid_argument(message: str):
    """A client's mistake: INVALID_ARG (HTTP 400) where this Triton supports codes."""
    code = getattr(pb_utils.TritonError, "INVALID_ARG", None)
    return (
        pb_utils.TritonError(message, code) if code is not None else pb_utils.TritonError(message)
    )
