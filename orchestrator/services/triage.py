"""Turning the ensemble's predictions into triage: intent, then routing from the taxonomy."""

from orchestrator.metrics import Metrics
from orchestrator.schemas.triage import IntentScore, Triage
from orchestrator.services.taxonomy import default_taxonomy
from orchestrator.triton.triage_client import Prediction, TriageClient

# The encoder reads 128 tokens; a longer text only costs tokenizing time and risks the
# tokenizer's byte limit, so what is sent is cut here.
MAX_TRIAGE_CHARS = 4000


def triage_of(prediction: Prediction, text: str) -> Triage:
    route = default_taxonomy().route(prediction.intent, text)
    return Triage(
        intent=prediction.intent,
        confidence=prediction.confidence,
        department=route.department,
        type=route.type,
        priority=route.priority,
        top=[IntentScore(intent=n, score=s) for n, s in prediction.top],
    )


async def triage_texts(client: TriageClient, texts: list[str], metrics: Metrics) -> list[Triage]:
    """One ensemble call for all `texts`; raises TritonRejected or TritonUnavailable."""
    predictions = await client.classify([t[:MAX_TRIAGE_CHARS] for t in texts])
    results = [triage_of(p, t) for p, t in zip(predictions, texts, strict=True)]
    for result in results:
        metrics.triage_outcomes.labels(result.department, result.priority).inc()
    return results


def ticket_text(subject: str, body: str) -> str:
    return f"{subject}\n{body}".strip()
