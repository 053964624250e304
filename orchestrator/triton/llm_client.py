"""Calling the `llm` model over gRPC streams from asyncio code."""

import asyncio
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import numpy as np
import tritonclient.grpc.aio as aio

from contracts.models import LLM_MODEL


class LLMUnavailable(RuntimeError):
    """The model could not answer: not loaded, unreachable or failed."""


class LLMTimeout(LLMUnavailable):
    """The model answered too slowly; it is up, so retrying at once would not help."""


class LLMRejected(LLMUnavailable):
    """The model refused the request itself (e.g. the prompt does not fit its context).

    A subclass of LLMUnavailable so that callers which only know "no answer" (drafts) keep
    their fallback; callers that can blame the client (chat) catch this first.
    """

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


class LLMOverloaded(LLMUnavailable):
    """The model is up but its waiting queue is full or the request waited past its deadline:
    retryable, and a reason to fail over to another model."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


# The llm model starts the message of an error with a stable "[<code>] ": the caller's own
# (rejected) or a full queue (overloaded).
_CODED_ERROR = re.compile(r"\[([a-z_]+)\] (.*)", re.DOTALL)
REJECTED_CODES = frozenset({"context_length_exceeded"})
OVERLOADED_CODES = frozenset({"queue_full", "queue_timeout"})


def _model_error(error) -> LLMUnavailable:
    message = error.message() if hasattr(error, "message") else str(error)
    coded = _CODED_ERROR.search(message or str(error))
    if coded and coded.group(1) in REJECTED_CODES:
        return LLMRejected(coded.group(1), coded.group(2))
    if coded and coded.group(1) in OVERLOADED_CODES:
        return LLMOverloaded(coded.group(1), coded.group(2))
    return LLMUnavailable(str(error))


@dataclass(frozen=True)
class Generation:
    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    model: str = ""  # the Triton model that wrote it


def _tensor(name: str, value, dtype, kind: str) -> aio.InferInput:
    array = np.array([value], dtype=dtype).reshape(1, -1)
    tensor = aio.InferInput(name, list(array.shape), kind)
    tensor.set_data_from_numpy(array)
    return tensor


def request_inputs(
    messages: list[dict],
    *,
    max_tokens: int,
    temperature: float = 0.0,
    top_p: float | None = None,
    seed: int | None = None,
    stop: list[str] | None = None,
    frequency_penalty: float | None = None,
    presence_penalty: float | None = None,
    priority: str | None = None,
    ignore_eos: bool = False,
) -> list[aio.InferInput]:
    """The `llm` model's inputs for one chat request (optional ones only when given).

    `priority`: "interactive" (the model's default) or "background", which waits behind it.
    """
    inputs = [
        _tensor("messages", json.dumps(messages).encode(), object, "BYTES"),
        _tensor("max_tokens", max_tokens, np.int32, "INT32"),
        _tensor("temperature", temperature, np.float32, "FP32"),
        _tensor("stream", True, bool, "BOOL"),
    ]
    optional = {
        "top_p": (top_p, np.float32, "FP32"),
        "seed": (seed, np.uint64, "UINT64"),
        "frequency_penalty": (frequency_penalty, np.float32, "FP32"),
        "presence_penalty": (presence_penalty, np.float32, "FP32"),
    }
    for name, (value, dtype, kind) in optional.items():
        if value is not None:
            inputs.append(_tensor(name, value, dtype, kind))
    if stop:
        words = np.array([[w.encode() for w in stop]], dtype=object)
        tensor = aio.InferInput("stop_words", list(words.shape), "BYTES")
        tensor.set_data_from_numpy(words)
        inputs.append(tensor)
    if priority is not None:
        inputs.append(_tensor("priority", priority.encode(), object, "BYTES"))
    if ignore_eos:  # generate max_tokens whatever the model predicts (benchmarks)
        inputs.append(_tensor("ignore_eos", True, bool, "BOOL"))
    return inputs


class LLMClient:
    """One gRPC channel, opened on first use and shared by every request of its event loop.

    A channel belongs to the loop it was opened in: a client used from a new loop (scripts
    and tests that call `asyncio.run` more than once) opens a new one there.
    """

    def __init__(self, url: str, model: str = LLM_MODEL):
        self.url = url
        self.model = model
        self._client: aio.InferenceServerClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _channel(self) -> aio.InferenceServerClient:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._client, self._loop = aio.InferenceServerClient(self.url), loop
        return self._client

    async def close(self) -> None:
        if self._client is not None and self._loop is asyncio.get_running_loop():
            await self._client.close()
        self._client = self._loop = None

    async def stream(
        self, messages: list[dict], *, timeout_s: float = 120.0, **params
    ) -> AsyncIterator[str | Generation]:
        """Yield each new piece of text, then a Generation with the totals.

        Closing the iterator early (a client that went away) cancels the gRPC call, and
        Triton cancels the request. A request that has had its final response (or its error)
        is not cancelled: its call is read to its end, which Triton makes at once (see
        `_end_call`).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        client = self._channel()

        async def requests():
            yield {"model_name": self.model, "inputs": request_inputs(messages, **params)}

        responses = client.stream_infer(requests()).__aiter__()
        parts: list[str] = []
        ended, generation = False, None
        try:
            while generation is None:
                remaining = deadline - loop.time()
                try:
                    result, error = await asyncio.wait_for(responses.__anext__(), remaining)
                except TimeoutError:
                    raise LLMTimeout(f"no answer within {timeout_s} s") from None
                except StopAsyncIteration:
                    ended = True
                    raise LLMUnavailable("the stream ended without a final response") from None
                if error is not None:
                    ended = True  # an error is the request's last response
                    raise _model_error(error)
                ended = result.get_response().parameters["triton_final_response"].bool_param
                text = result.as_numpy("text_output")
                piece = text.reshape(-1)[0].decode() if text is not None else ""
                if piece:
                    parts.append(piece)
                    yield piece  # the caller may stop here, the final response had or not
                if ended:
                    generation = Generation(
                        "".join(parts),
                        result.as_numpy("finish_reason").reshape(-1)[0].decode(),
                        int(result.as_numpy("num_input_tokens").reshape(-1)[0]),
                        int(result.as_numpy("num_output_tokens").reshape(-1)[0]),
                        self.model,
                    )
        except LLMUnavailable:
            raise
        except Exception as error:  # gRPC errors: server down, model not loaded
            raise LLMUnavailable(str(error)) from error
        finally:
            # Only this request's call; the channel stays open.
            await _end_call(responses) if ended else responses.cancel()
        yield generation

    async def ready(self, timeout_s: float = 5.0) -> bool:
        """Whether Triton says the model is ready; False when Triton cannot be reached."""
        try:
            return await self._channel().is_model_ready(self.model, client_timeout=timeout_s)
        except Exception:  # unreachable, or no answer in time: not ready either way
            return False

    async def generate(self, messages: list[dict], **params) -> Generation:
        return await final_generation(self.stream(messages, **params))


async def _end_call(responses, timeout_s: float = 2.0) -> None:
    """Read a call whose request has had its last response to its end (Triton ends it then).

    Cancelling it instead, between the last response and the call's end, is a race that
    Triton 2.51 can lose: in it the model's instance never unloaded afterwards (an unload,
    a reload or a shutdown waited for good; measured with the LLM bench's client, which
    did that, and gone once it read to the end). A call not ended in `timeout_s` is
    cancelled all the same.
    """
    try:
        async with asyncio.timeout(timeout_s):
            async for _ in responses:
                pass
    except Exception:  # no clean end in time: cancel, as before
        responses.cancel()


async def final_generation(items: AsyncIterator[str | Generation]) -> Generation:
    """The Generation that ends a stream of text pieces (the pieces are dropped)."""
    async for item in items:
        if isinstance(item, Generation):
            return item
    raise LLMUnavailable("no final response")
