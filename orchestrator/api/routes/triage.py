"""POST /v1/triage: the stateless door to the Triton ensemble."""

from fastapi import APIRouter, Request

from orchestrator.api.deps import require
from orchestrator.errors import ApiError, unavailable
from orchestrator.schemas.triage import IntentScore, Triage, TriageRequest, TriageResponse
from orchestrator.taxonomy import default_taxonomy
from orchestrator.triton.triage_client import TritonRejected, TritonUnavailable

router = APIRouter(prefix="/v1", tags=["triage"])


@router.post("/triage", response_model=TriageResponse, dependencies=[require("tickets:write")])
async def triage(data: TriageRequest, request: Request) -> TriageResponse:
    for i, text in enumerate(data.texts):
        if not text.strip():
            raise ApiError(422, f"texts[{i}] is empty", param=f"texts.{i}")
    try:
        predictions = await request.app.state.triage.classify(data.texts)
    except TritonRejected as error:
        raise ApiError(422, str(error), param="texts") from None
    except TritonUnavailable:
        raise unavailable("the triage model is unavailable; retry shortly") from None
    taxonomy = default_taxonomy()
    outcomes = request.app.state.metrics.triage_outcomes
    results = []
    for text, p in zip(data.texts, predictions, strict=True):
        route = taxonomy.route(p.intent, text)
        outcomes.labels(route.department, route.priority).inc()
        results.append(
            Triage(
                intent=p.intent,
                confidence=p.confidence,
                department=route.department,
                type=route.type,
                priority=route.priority,
                top=[IntentScore(intent=n, score=s) for n, s in p.top],
            )
        )
    return TriageResponse(results=results)
