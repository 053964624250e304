"""Turning the ensemble's predictions into triage: intent, then routing from the taxonomy."""

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from contracts.models import MAX_TEXT_BYTES
from orchestrator.environments import DEFAULT_ENVIRONMENT
from orchestrator.metrics import Metrics
from orchestrator.schemas.triage import IntentScore, Triage
from orchestrator.services.bands import confidence_band
from orchestrator.services.canary import CanaryWatch, watched_call
from orchestrator.services.taxonomy import default_taxonomy
from orchestrator.services.versions import VersionStore, choose_version
from orchestrator.triton.triage_client import (
    BACKGROUND,
    Prediction,
    TriageClient,
)


@dataclass(frozen=True)
class TriageResult:
    """What triage decided for one text: the domain object the worker and routes share."""

    intent: str
    confidence: float | None  # None: an agent set the intent before the model predicted one
    department: str
    type: str
    priority: str
    top: tuple[tuple[str, float], ...]  # the most likely intents with their scores
    model_version: str | None = None  # of the model that predicted; None if not known
    band: str | None = None  # contracts.bands.BANDS; None without a confidence or bands

    def public(self) -> Triage:
        top = [IntentScore(intent=intent, score=score) for intent, score in self.top]
        return Triage(
            intent=self.intent,
            confidence=self.confidence,
            department=self.department,
            type=self.type,
            priority=self.priority,
            top=top,
            model_version=self.model_version,
            confidence_band=self.band,
        )


def triage_of(prediction: Prediction, text: str) -> TriageResult:
    route = default_taxonomy().route(prediction.intent, text)
    return TriageResult(
        intent=prediction.intent,
        confidence=prediction.confidence,
        department=route.department,
        type=route.type,
        priority=route.priority,
        top=tuple((name, score) for name, score in prediction.top),
        model_version=prediction.model_version,
        band=confidence_band(prediction.confidence, prediction.model_version),
    )


async def triage_texts(
    client: TriageClient,
    texts: list[str],
    metrics: Metrics,
    *,
    versions: VersionStore | None = None,
    environments: Sequence[str] | None = None,
    watch: CanaryWatch | None = None,
    priority: int = BACKGROUND,
) -> list[TriageResult]:
    """Triage `texts`, each answered by the model version routing picks for it and its key's
    environment (`environments`, one per text; production when not given): one ensemble call
    per version met, at once. Without `versions`, one call that Triton routes (its newest).
    A version other than production that cannot answer is answered by production instead;
    `watch` records every call's outcome; `priority`: Triton's (triage_client.INTERACTIVE for a
    caller waiting on the answer). Raises TritonRejected or TritonUnavailable."""
    inputs = [triage_input(t) for t in texts]
    if versions is None:
        predictions = await client.classify(inputs, priority=priority)
    else:
        routing = await versions.routing(client.model)
        environments = environments or [DEFAULT_ENVIRONMENT] * len(texts)
        groups: dict[int, list[int]] = {}
        for i, (text, environment) in enumerate(zip(texts, environments, strict=True)):
            groups.setdefault(choose_version(text, environment, routing), []).append(i)
        answers = await asyncio.gather(
            *(
                _classify(
                    client, [inputs[i] for i in group], v, routing.production, watch, priority
                )
                for v, group in groups.items()
            )
        )
        predictions = [None] * len(texts)
        for group, answer in zip(groups.values(), answers, strict=True):
            for i, prediction in zip(group, answer, strict=True):
                predictions[i] = prediction
    results = [triage_of(p, t) for p, t in zip(predictions, texts, strict=True)]
    for result in results:
        metrics.triage_outcomes.labels(result.department, result.priority).inc()
    return results


async def _classify(
    client: TriageClient,
    inputs: list[str],
    version: int,
    production: int,
    watch: CanaryWatch | None,
    priority: int,
) -> list[Prediction]:
    def call(v: int):
        return client.classify(inputs, v, priority=priority)

    return await watched_call(call, version, production, client.model, watch)


def ticket_text(subject: str, body: str) -> str:
    return f"{subject}\n{body}".strip()


def triage_input(text: str) -> str:
    """What triage reads of `text`: its first MAX_TEXT_BYTES bytes, cut at a character boundary.

    /v1/triage refuses longer texts, so only a ticket (subject and body, up to about 80 KB) is
    ever cut here, and the cut is invisible to the result: the encoder reads the first 128
    tokens, far fewer than 16 KB of text. The ticket itself is stored and drafted whole.
    """
    data = text.encode()
    if len(data) <= MAX_TEXT_BYTES:
        return text
    return data[:MAX_TEXT_BYTES].decode(errors="ignore")  # drops only a split last character
