"""What the monitoring routes and `python -m orchestrator drift` answer."""

from datetime import datetime

from pydantic import BaseModel, Field


class Signal(BaseModel):
    method: str
    score: float = Field(description="A p-value for the columns; the MMD² for the embeddings")
    threshold: float
    drifted: bool


class DriftRunPublic(BaseModel):
    id: int
    tenant: str = Field(description='The tenant\'s name, or "all" for every tenant together')
    model_version: str | None = Field(description="The model version the reference was read by")
    reference_size: int
    current_size: int = Field(description="Tickets in the window")
    drift_share: float = Field(description="Share of the signals that drifted")
    prediction_drift_score: float = Field(
        description="Intent mix or confidence histogram: distance beyond chance, 0..1"
    )
    embedding_drift_score: float
    override_rate: float | None = Field(
        description="Share of the window's tickets whose intent an agent corrected; null: none"
    )
    drifted: bool = Field(description="At or above a warning level")
    signals: dict[str, Signal]
    seconds: float
    created_at: datetime
    report_url: str


class SkippedScope(BaseModel):
    tenant: str
    tickets: int = Field(description="Triaged tickets in the window: fewer than min_sample")


class DriftSummary(BaseModel):
    pass_id: str | None = Field(description="null: no pass has compared anything yet")
    created_at: datetime | None
    min_sample: int
    runs: list[DriftRunPublic]
    skipped: list[SkippedScope] = Field(
        default_factory=list,
        description="Scopes left out for too few tickets (a pass's own output)",
    )
