"""Calling the `ticket_triage` ensemble over gRPC from asyncio code."""

from dataclasses import dataclass

import numpy as np
import tritonclient.grpc.aio as aio
from tritonclient.grpc import InferResult
from tritonclient.utils import InferenceServerException

OUTPUTS = ("intent", "confidence", "top_intents", "top_scores")


class TritonUnavailable(RuntimeError):
    """Triton or the model cannot answer now; the caller may retry."""


class TritonRejected(ValueError):
    """Triton refused the input (empty text, too long, bad UTF-8): the client's mistake."""


@dataclass(frozen=True)
class Prediction:
    intent: str
    confidence: float
    top: list[tuple[str, float]]
    # The version of the model that answered, as Triton's response names it: for the
    # `ticket_triage` ensemble that is the ensemble's own version, not its steps'.
    model_version: str | None = None


_CLIENT_MISTAKES = ("is empty", "is not valid UTF-8", "the limit is")


def predictions(result: InferResult, count: int) -> list[Prediction]:
    """The ensemble's answer for `count` texts, each with the model version that answered."""
    intents = result.as_numpy("intent")[:, 0]
    confidence = result.as_numpy("confidence")[:, 0]
    top_intents, top_scores = result.as_numpy("top_intents"), result.as_numpy("top_scores")
    version = result.get_response().model_version or None
    return [
        Prediction(
            intents[i].decode(),
            float(confidence[i]),
            [(n.decode(), float(s)) for n, s in zip(top_intents[i], top_scores[i], strict=True)],
            version,
        )
        for i in range(count)
    ]


class TriageClient:
    def __init__(
        self,
        url: str,
        model: str = "ticket_triage",
        timeout_s: float = 10.0,
        call_timeout_s: float = 10.0,
    ):
        self.model, self.timeout_s, self.call_timeout_s = model, timeout_s, call_timeout_s
        self._client = aio.InferenceServerClient(url)

    async def classify(self, texts: list[str], version: int | None = None) -> list[Prediction]:
        """One inference call; `version`: that version of the model, else Triton's choice
        (the newest it serves)."""
        tensor = aio.InferInput("text", [len(texts), 1], "BYTES")
        tensor.set_data_from_numpy(np.array([[t.encode()] for t in texts], dtype=object))
        try:
            result = await self._client.infer(
                self.model,
                [tensor],
                model_version=str(version) if version is not None else "",
                outputs=[aio.InferRequestedOutput(name) for name in OUTPUTS],
                client_timeout=self.timeout_s,
            )
        except InferenceServerException as error:
            message = error.message() or str(error)
            if any(mistake in message for mistake in _CLIENT_MISTAKES):
                raise TritonRejected(message.split("', ")[-1]) from error
            raise TritonUnavailable(message) from error
        return predictions(result, len(texts))

    async def ready(self) -> bool:
        try:
            return await self._client.is_model_ready(self.model, client_timeout=self.call_timeout_s)
        except InferenceServerException:
            return False

    async def close(self) -> None:
        await self._client.close()
