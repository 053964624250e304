"""Calling the x-ray models over gRPC from asyncio code: `xray_diagnosis` for an image's
answer, `xray_classifier` for batches of prepared pixels (the occlusion heatmap)."""

from dataclasses import dataclass

import numpy as np
import tritonclient.grpc.aio as aio
from tritonclient.utils import InferenceServerException

from contracts.images import BAD_IMAGE
from contracts.xray import (
    BASE_XRAY_VERSION,
    LABELS,
    XRAY_CLASSIFIER,
    XRAY_MAX_BATCH,
    xray_model_name,
)
from orchestrator.triton.triage_client import failure_of

OUTPUTS = ("label", "probability", "threshold", "image_mean", "image_std")


@dataclass(frozen=True)
class XrayAnswer:
    label: str
    probability: float  # of pneumonia
    threshold: float  # the probability at and above which the label is pneumonia
    model_version: str  # the x-ray version that answered
    # the prepared 28 x 28 image's mean and standard deviation on the 0-1 scale
    image_mean: float = 0.0
    image_std: float = 0.0


class XrayClient:
    def __init__(self, url: str, timeout_s: float = 10.0):
        self.timeout_s = timeout_s
        self._client = aio.InferenceServerClient(url)

    async def diagnose(self, image: bytes, version: int = BASE_XRAY_VERSION) -> XrayAnswer:
        """One image's diagnosis by x-ray version `version`, through its ensemble (preprocess,
        then the classifier)."""
        tensor = aio.InferInput("image", [1, 1], "BYTES")
        tensor.set_data_from_numpy(np.array([[image]], dtype=object))
        result = await self._infer(xray_model_name(version), tensor)
        return XrayAnswer(
            LABELS[int(result.as_numpy("label")[0, 0])],
            float(result.as_numpy("probability")[0, 0]),
            float(result.as_numpy("threshold")[0, 0]),
            str(version),
            float(result.as_numpy("image_mean")[0, 0]),
            float(result.as_numpy("image_std")[0, 0]),
        )

    async def probabilities(
        self, pixels: np.ndarray, version: int = BASE_XRAY_VERSION
    ) -> np.ndarray:
        """Pneumonia probabilities by x-ray version `version` of prepared images
        [N, 1, 28, 28], in calls of at most the classifier's max batch."""
        out = []
        for start in range(0, len(pixels), XRAY_MAX_BATCH):
            chunk = np.ascontiguousarray(pixels[start : start + XRAY_MAX_BATCH], dtype=np.float32)
            tensor = aio.InferInput("image", list(chunk.shape), "FP32")
            tensor.set_data_from_numpy(chunk)
            result = await self._infer(
                XRAY_CLASSIFIER, tensor, outputs=("probability",), version=str(version)
            )
            out.append(result.as_numpy("probability").reshape(-1))
        return np.concatenate(out)

    async def _infer(self, model: str, tensor, outputs=OUTPUTS, version: str = ""):
        try:
            return await self._client.infer(
                model,
                [tensor],
                model_version=version,
                outputs=[aio.InferRequestedOutput(name) for name in outputs],
                client_timeout=self.timeout_s,
            )
        except InferenceServerException as error:
            raise failure_of(error, BAD_IMAGE) from error

    async def close(self) -> None:
        await self._client.close()
