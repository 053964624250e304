"""Calling the `llm` model over gRPC streams from asyncio code."""

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import numpy as np
import tritonclient.grpc.aio as aio


class LLMUnavailable(RuntimeError):
    """The model could not answer: not loaded, unreachable, failed or too slow."""


@dataclass(frozen=True)
class Generation:
    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int


def _tensor(name: str, value, dtype, kind: str) -> aio.InferInput:
    tensor = aio.InferInput(name, [1, 1], kind)
    tensor.set_data_from_numpy(np.array([[value]], dtype=dtype))
    return tensor


def request_inputs(
    messages: list[dict], *, max_tokens: int, temperature: float = 0.0, seed: int | None = None
) -> list[aio.InferInput]:
    inputs = [
        _tensor("messages", json.dumps(messages).encode(), object, "BYTES"),
        _tensor("max_tokens", max_tokens, np.int32, "INT32"),
        _tensor("temperature", temperature, np.float32, "FP32"),
        _tensor("stream", True, bool, "BOOL"),
    ]
    if seed is not None:
        inputs.append(_tensor("seed", seed, np.uint64, "UINT64"))
    return inputs


class LLMClient:
    def __init__(self, url: str, model: str = "llm"):
        self.url = url
        self.model = model

    async def stream(self, messages: list[dict], **params) -> AsyncIterator[str | Generation]:
        """Yield each new piece of text, then a Generation with the totals."""
        client = aio.InferenceServerClient(self.url)

        async def requests():
            yield {"model_name": self.model, "inputs": request_inputs(messages, **params)}

        parts: list[str] = []
        try:
            async for result, error in client.stream_infer(requests()):
                if error is not None:
                    raise LLMUnavailable(str(error))
                text = result.as_numpy("text_output")
                piece = text.reshape(-1)[0].decode() if text is not None else ""
                if piece:
                    parts.append(piece)
                    yield piece
                if result.get_response().parameters["triton_final_response"].bool_param:
                    yield Generation(
                        "".join(parts),
                        result.as_numpy("finish_reason").reshape(-1)[0].decode(),
                        int(result.as_numpy("num_input_tokens").reshape(-1)[0]),
                        int(result.as_numpy("num_output_tokens").reshape(-1)[0]),
                    )
                    return
        except LLMUnavailable:
            raise
        except Exception as error:  # gRPC errors: server down, model not loaded
            raise LLMUnavailable(str(error)) from error
        finally:
            await client.close()
        raise LLMUnavailable("the stream ended without a final response")

    async def generate(self, messages: list[dict], *, timeout_s: float, **params) -> Generation:
        async def collect() -> Generation:
            async for item in self.stream(messages, **params):
                if isinstance(item, Generation):
                    return item
            raise LLMUnavailable("no final response")

        try:
            return await asyncio.wait_for(collect(), timeout_s)
        except TimeoutError as error:
            raise LLMUnavailable(f"no answer within {timeout_s} s") from error
