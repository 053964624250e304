from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

# Triage reads the first 128 tokens; longer texts are refused rather than silently cut.
TriageText = Annotated[str, Field(max_length=10_000)]


class TriageRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    texts: list[TriageText] = Field(min_length=1, max_length=64)


class IntentScore(BaseModel):
    intent: str
    score: float


class Triage(BaseModel):
    intent: str
    confidence: float
    department: str
    type: str
    priority: str
    top: list[IntentScore]


class TriageResponse(BaseModel):
    results: list[Triage]
