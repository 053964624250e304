from pydantic import BaseModel, ConfigDict, Field


class TriageRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    texts: list[str] = Field(min_length=1, max_length=64)


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
