"""Calling `credit_scoring` over gRPC from asyncio code: applicants' fields in, each one's
probability of default and per-feature contributions out."""

from dataclasses import dataclass

import numpy as np
import tritonclient.grpc.aio as aio
from tritonclient.utils import InferenceServerException

from contracts.credit import BAD_APPLICANT, BASE_CREDIT_VERSION, credit_model_name
from orchestrator.triton.triage_client import failure_of


@dataclass(frozen=True)
class CreditAnswer:
    probabilities: np.ndarray  # float [N], of default
    contributions: np.ndarray  # float [N, len(FEATURES)], to the logit
    model_version: str


class CreditClient:
    def __init__(self, url: str, timeout_s: float = 10.0):
        self.timeout_s = timeout_s
        self._client = aio.InferenceServerClient(url)

    async def score(self, fields: np.ndarray, version: int = BASE_CREDIT_VERSION) -> CreditAnswer:
        """`fields` int64 [N, len(FIELDS)], N at most CREDIT_MAX_BATCH, scored by credit
        `version`. Raises TritonRejected (an applicant out of range) or TritonUnavailable."""
        tensor = aio.InferInput("fields", list(fields.shape), "INT64")
        tensor.set_data_from_numpy(fields.astype(np.int64))
        try:
            result = await self._client.infer(
                credit_model_name(version),
                [tensor],
                outputs=[aio.InferRequestedOutput(n) for n in ("probability", "contributions")],
                client_timeout=self.timeout_s,
            )
        except InferenceServerException as error:
            raise failure_of(error, BAD_APPLICANT) from error
        return CreditAnswer(
            result.as_numpy("probability").reshape(-1).astype(np.float64),
            result.as_numpy("contributions").astype(np.float64),
            str(version),
        )

    async def close(self) -> None:
        await self._client.close()
