from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from contracts.models import MAX_TEXT_BYTES


def _within_byte_limit(text: str) -> str:
    size = len(text.encode())
    if size > MAX_TEXT_BYTES:
        raise ValueError(f"{size} bytes as UTF-8; the limit is {MAX_TEXT_BYTES}")
    return text


# Longer texts are refused rather than silently cut (the limit is the tokenizer's own).
TriageText = Annotated[
    str,
    Field(max_length=MAX_TEXT_BYTES, description=f"At most {MAX_TEXT_BYTES} bytes as UTF-8"),
    AfterValidator(_within_byte_limit),
]


class TriageRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    texts: list[TriageText] = Field(min_length=1, max_length=64)


class IntentScore(BaseModel):
    intent: str
    score: float


class Triage(BaseModel):
    intent: str
    confidence: float | None = Field(
        description="The model's probability for its predicted intent; null when an agent "
        "set the intent before the model predicted one"
    )
    department: str
    type: str
    priority: str
    top: list[IntentScore]
    model_version: str | None = Field(
        default=None,
        description="The version of Triton's `ticket_triage` that predicted (the ensemble's "
        "own version); null for tickets triaged before versions were recorded",
    )
    confidence_band: Literal["high", "medium", "low"] | None = Field(
        default=None,
        description="How far to trust the intent: `high` was right at least 97 % of the time "
        "on Banking77's test split; `low` goes to the review queue (`GET "
        "/v1/tickets?band=low`); null without bands (`python -m export bands`)",
    )


class TriageResponse(BaseModel):
    results: list[Triage]
