"""Calling the `ticket_triage` ensemble over gRPC from asyncio code."""

import itertools
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import tritonclient.grpc.aio as aio
from tritonclient.grpc import InferResult
from tritonclient.utils import InferenceServerException

from contracts.models import TRIAGE_ENSEMBLE, triage_model_name

OUTPUTS = ("intent", "confidence", "top_intents", "top_scores")
# Triton priority levels: a caller waiting on the answer (POST /v1/triage) before the worker's
# and the drift monitor's batches, once ticket_intent's config.pbtxt sets `priority_levels: 2`
# (the ensemble passes a request's priority to its first step). It does not now: this Triton
# stalled requests for 500 ms with priority levels on (the config says more). Without levels
# Triton ignores the priority sent.
INTERACTIVE, BACKGROUND = 1, 2


class TritonUnavailable(RuntimeError):
    """Triton or the model cannot answer now; the caller may retry."""


class TritonRejected(ValueError):
    """Triton refused the input (empty text, too long, bad UTF-8): the client's mistake."""


def failure_of(error: InferenceServerException, mistake: str) -> Exception:
    """What a failed call means: TritonRejected with the reason after `mistake` (the prefix a
    Python step puts before a caller's mistake, e.g. contracts.images.BAD_IMAGE), else
    TritonUnavailable."""
    message = error.message() or str(error)
    if mistake in message:
        return TritonRejected(message.split(mistake, 1)[1])
    return TritonUnavailable(message)


@dataclass(frozen=True)
class Prediction:
    intent: str
    confidence: float
    top: list[tuple[str, float]]
    # The triage version that answered: the one asked for, else the version Triton's
    # response names (the ensemble's own version, not its steps').
    model_version: str | None = None


_CLIENT_MISTAKES = ("is empty", "is not valid UTF-8", "the limit is")


def predictions(result: InferResult, count: int, version: int | None = None) -> list[Prediction]:
    """The ensemble's answer for `count` texts, each with the model version that answered."""
    intents = result.as_numpy("intent")[:, 0]
    confidence = result.as_numpy("confidence")[:, 0]
    top_intents, top_scores = result.as_numpy("top_intents"), result.as_numpy("top_scores")
    if version is None:
        version = result.get_response().model_version or None
    return [
        Prediction(
            intents[i].decode(),
            float(confidence[i]),
            [(n.decode(), float(s)) for n, s in zip(top_intents[i], top_scores[i], strict=True)],
            str(version) if version is not None else None,
        )
        for i in range(count)
    ]


class TriageClient:
    """Triage calls to one Triton, or taken in turn by several replicas (`urls`); a replica
    that cannot answer hands the call to the next one."""

    def __init__(
        self,
        urls: str | Sequence[str],
        model: str = TRIAGE_ENSEMBLE,
        timeout_s: float = 10.0,
        call_timeout_s: float = 10.0,
    ):
        self.model, self.timeout_s, self.call_timeout_s = model, timeout_s, call_timeout_s
        urls = [urls] if isinstance(urls, str) else list(urls)
        self._clients = [aio.InferenceServerClient(url) for url in urls]
        # each model's calls go round the replicas in turn (a batch split per version makes
        # two calls at a time: one counter for all would send each version to one replica)
        self._turns: dict[str, itertools.count] = defaultdict(itertools.count)

    @property
    def _client(self):
        return self._clients[0]

    @_client.setter
    def _client(self, client) -> None:  # tests put a recording client in place
        self._clients = [client]

    async def classify(
        self, texts: list[str], version: int | None = None, *, priority: int = BACKGROUND
    ) -> list[Prediction]:
        """One inference call; `version`: that triage version, served by its own ensemble
        (contracts.models.triage_model_name), else Triton's choice (the newest it serves)."""
        tensor = aio.InferInput("text", [len(texts), 1], "BYTES")
        tensor.set_data_from_numpy(np.array([[t.encode()] for t in texts], dtype=object))
        model, model_version = self.target(version)
        first = next(self._turns[model])
        for attempt in range(len(self._clients)):
            client = self._clients[(first + attempt) % len(self._clients)]
            try:
                result = await self._infer(client, tensor, model, model_version, priority)
                return predictions(result, len(texts), version)
            except TritonUnavailable:
                if attempt == len(self._clients) - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def _infer(
        self, client, tensor, model: str, model_version: str, priority: int
    ) -> InferResult:
        try:
            return await client.infer(
                model,
                [tensor],
                model_version=model_version,
                priority=priority,
                outputs=[aio.InferRequestedOutput(name) for name in OUTPUTS],
                client_timeout=self.timeout_s,
            )
        except InferenceServerException as error:
            message = error.message() or str(error)
            if any(mistake in message for mistake in _CLIENT_MISTAKES):
                raise TritonRejected(message.split("', ")[-1]) from error
            raise TritonUnavailable(message) from error

    def target(self, version: int | None) -> tuple[str, str]:
        """(model, Triton version) to call for `version`: triage versions have an ensemble
        each; a client of another model (tests, benches) asks Triton for the version."""
        if version is None:
            return self.model, ""
        if self.model == TRIAGE_ENSEMBLE:
            return triage_model_name(version), ""
        return self.model, str(version)

    async def ready(self) -> bool:
        """Every replica serves the model."""
        try:
            for client in self._clients:
                if not await client.is_model_ready(self.model, client_timeout=self.call_timeout_s):
                    return False
        except InferenceServerException:
            return False
        return True

    async def close(self) -> None:
        for client in self._clients:
            await client.close()
