"""The encoder's embeddings of texts, from Triton: `ticket_tokenizer`, then `ticket_encoder`.

Drift monitoring compares what the model reads, so it asks the same two steps the triage
ensemble chains, with the versions Triton serves; the ensemble itself exports no embedding.
"""

import numpy as np
import tritonclient.grpc.aio as aio
from tritonclient.utils import InferenceServerException

from contracts.models import TRIAGE_MAX_BATCH
from orchestrator.triton.triage_client import TritonUnavailable

TOKENIZER, ENCODER = "ticket_tokenizer", "ticket_encoder"


class EmbeddingClient:
    def __init__(self, url: str, timeout_s: float = 30.0):
        self.timeout_s = timeout_s
        self._client = aio.InferenceServerClient(url)

    async def embed(self, texts: list[str]) -> np.ndarray:
        """One row per text (float32); calls of at most the models' batch size, in order."""
        rows = [
            await self._embed_batch(texts[i : i + TRIAGE_MAX_BATCH])
            for i in range(0, len(texts), TRIAGE_MAX_BATCH)
        ]
        return np.concatenate(rows) if rows else np.zeros((0, 0), dtype=np.float32)

    async def _embed_batch(self, texts: list[str]) -> np.ndarray:
        text = aio.InferInput("text", [len(texts), 1], "BYTES")
        text.set_data_from_numpy(np.array([[t.encode()] for t in texts], dtype=object))
        tokens = await self._infer(TOKENIZER, [text], ("input_ids", "attention_mask"))
        inputs = []
        for name in ("input_ids", "attention_mask"):
            array = tokens.as_numpy(name)
            tensor = aio.InferInput(name, list(array.shape), "INT64")
            tensor.set_data_from_numpy(array)
            inputs.append(tensor)
        return (await self._infer(ENCODER, inputs, ("embedding",))).as_numpy("embedding")

    async def _infer(self, model: str, inputs: list, outputs: tuple[str, ...]):
        try:
            return await self._client.infer(
                model,
                inputs,
                outputs=[aio.InferRequestedOutput(name) for name in outputs],
                client_timeout=self.timeout_s,
            )
        except InferenceServerException as error:
            raise TritonUnavailable(f"{model}: {error.message() or error}") from error

    async def close(self) -> None:
        await self._client.close()
