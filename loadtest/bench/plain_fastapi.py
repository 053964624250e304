"""The design a team would otherwise pick: one FastAPI app running the ONNX files itself.

No Triton, no batching across requests: each request runs the model repository's fused
`ticket_intent` file (tokenizer, INT8 encoder and head in one ONNX file, the latest version, as
Triton serves it; in process it is also faster than the tokenizers package with the two other
files: the bench's ceiling measures both) with ONNX Runtime in the app's process, in FastAPI's
thread pool (a plain `def` route). The answer has the orchestrator's shape (intent, routing,
top five), so the two differ only in how the work is served. No API keys and no database:
what is left out only makes this app faster.

Run: PLAIN_TRIAGE_REPOSITORY=model_repository uvicorn loadtest.bench.plain_fastapi:create_app
--factory
"""

import os
from pathlib import Path

import numpy as np
from fastapi import FastAPI

from contracts.models import INTENT_MODEL
from contracts.runtime import ort_session
from orchestrator.schemas.triage import IntentScore, Triage, TriageRequest, TriageResponse
from orchestrator.services.taxonomy import default_taxonomy

SESSION_THREADS = 2  # intra-op threads, as Triton's encoder config and the bench's ceiling use


def latest_version(model_folder: Path) -> Path:
    """The highest numbered version holding a model.onnx: what Triton's `latest` policy serves."""
    versions = [
        p for p in model_folder.iterdir() if p.name.isdigit() and (p / "model.onnx").is_file()
    ]
    return max(versions, key=lambda p: int(p.name)) / "model.onnx"


class TriageModel:
    def __init__(self, repository: Path):
        self.session = ort_session(latest_version(repository / INTENT_MODEL), SESSION_THREADS)

    def classify(self, texts: list[str]) -> tuple[np.ndarray, ...]:
        """intent, confidence, top_intents, top_scores for `texts`, padded to the longest."""
        feeds = {"text": np.array(texts, dtype=object).reshape(-1, 1)}
        return tuple(self.session.run(None, feeds))


def create_app() -> FastAPI:
    model = TriageModel(Path(os.environ["PLAIN_TRIAGE_REPOSITORY"]))
    taxonomy = default_taxonomy()
    app = FastAPI(title="Plain FastAPI triage (benchmark peer)")

    @app.get("/healthz")
    def healthz() -> dict:
        return {"status": "ok"}

    @app.post("/v1/triage", response_model=TriageResponse)
    def triage(data: TriageRequest) -> TriageResponse:
        intents, confidences, top_intents, top_scores = model.classify(data.texts)
        results = []
        for i, text in enumerate(data.texts):
            intent = _text(intents[i][0])
            route = taxonomy.route(intent, text)
            top = [
                IntentScore(intent=_text(n), score=float(s))
                for n, s in zip(top_intents[i], top_scores[i], strict=True)
            ]
            results.append(
                Triage(
                    intent=intent,
                    confidence=float(confidences[i][0]),
                    department=route.department,
                    type=route.type,
                    priority=route.priority,
                    top=top,
                )
            )
        return TriageResponse(results=results)

    return app


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
