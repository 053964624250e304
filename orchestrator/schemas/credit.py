"""Credit scoring: what POST /v1/credit/scores takes and answers, the stored scorings, and a
tenant's decision policy. An applicant's fields come from contracts/credit.py, with their
ranges: every field that is missing, not an integer or out of range is a 422 naming it."""

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, create_model

from contracts.credit import CREDIT_MAX_BATCH, FIELDS

Applicant = create_model(
    "Applicant",
    __config__=ConfigDict(extra="forbid"),
    __doc__="One applicant: the Taiwan data set's columns in lower case, as integers. `sex` "
    "and `marriage` are stored and measured for fairness, never read by the model.",
    **{
        f.name: (Annotated[StrictInt, Field(ge=f.low, le=f.high, description=f.words)], ...)
        for f in FIELDS
    },
)


class ScoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    applicants: list[Applicant] = Field(min_length=1, max_length=CREDIT_MAX_BATCH)


class Reason(BaseModel):
    field: str
    text: str = Field(description="The feature and the applicant's value, in words")
    value: int
    contribution: float = Field(description="How much it raised the log-odds of default")


Decision = Literal["approve", "review", "decline"]


class ScoreResult(BaseModel):
    id: int = Field(description="The stored scoring (GET /v1/credit/scores/{id})")
    probability_of_default: float
    score: int = Field(description="Points: 600 at odds of 50 to 1, 20 more per doubling")
    decision: Decision = Field(description="From the tenant's policy (GET /v1/credit/policy)")
    reasons: list[Reason] = Field(
        description="Up to 3 features that raised the risk, largest first"
    )
    model_version: str


class ScoreResponse(BaseModel):
    results: list[ScoreResult]


class ScoreRecord(ScoreResult):
    applicant: dict[str, int]
    key_id: int
    created_at: datetime
    defaulted: bool | None = Field(
        description="Whether the applicant went on to default, as reported (null: not yet)"
    )
    outcome_at: datetime | None


class Outcome(BaseModel):
    """What became of a scored applicant: the label retraining learns from."""

    model_config = ConfigDict(extra="forbid")

    defaulted: bool = Field(strict=True)


class ScorePage(BaseModel):
    data: list[ScoreRecord]
    next_cursor: str | None


class PolicyCosts(BaseModel):
    """What each outcome costs the lender, in any one unit."""

    model_config = ConfigDict(extra="forbid")

    cost_accept_bad: float = Field(gt=0, le=1e9, description="Approving one who defaults")
    cost_refuse_good: float = Field(gt=0, le=1e9, description="Declining one who would repay")
    cost_review: float = Field(ge=0, le=1e9, description="A manual review")


class PolicyPublic(PolicyCosts):
    approve_below: float = Field(description="Approve below this probability of default")
    decline_from: float = Field(description="Decline from this one; review in between")
    default: bool = Field(description="True until the tenant sets its own costs")
    updated_at: datetime | None
