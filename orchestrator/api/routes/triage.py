"""POST /v1/triage: the stateless door to the Triton ensemble."""

from typing import Annotated

from fastapi import APIRouter, Request

from orchestrator.api.deps import require
from orchestrator.api.keycache import Caller
from orchestrator.errors import ApiError, unavailable
from orchestrator.schemas.triage import TriageRequest, TriageResponse
from orchestrator.services.triage import triage_texts
from orchestrator.triton.triage_client import INTERACTIVE, TritonRejected, TritonUnavailable

router = APIRouter(prefix="/v1", tags=["triage"])


@router.post("/triage", response_model=TriageResponse)
async def triage(
    data: TriageRequest, request: Request, key: Annotated[Caller, require("tickets:write")]
) -> TriageResponse:
    """Triage up to 64 texts in one call, straight from the `ticket_triage` ensemble; each
    result names the model version that answered (a canary takes a share of production
    texts, always the same texts; staging keys meet the canary or the newest candidate)."""
    for i, text in enumerate(data.texts):
        if not text.strip():
            raise ApiError(422, f"texts[{i}] is empty", param=f"texts.{i}")
    try:
        results = await triage_texts(
            request.app.state.triage,
            data.texts,
            request.app.state.metrics,
            versions=request.app.state.versions,
            environments=[key.environment] * len(data.texts),
            watch=request.app.state.canary,
            priority=INTERACTIVE,  # before the worker's batches
        )
    except TritonRejected as error:
        raise ApiError(422, str(error), param="texts") from None
    except TritonUnavailable:
        raise unavailable("the triage model is unavailable; retry shortly") from None
    return TriageResponse(results=[result.public() for result in results])
