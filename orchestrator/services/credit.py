"""Credit scoring: the model's answer for each applicant made a score, a decision under the
tenant's policy and its reasons in words, and stored for audit (who, when, the fields sent,
the model version, the result)."""

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from contracts.credit import BY_NAME, FEATURES, fields_row, score
from orchestrator.db.models import CreditScore
from orchestrator.errors import NotFound
from orchestrator.schemas.credit import ScorePage, ScoreRecord, ScoreResult
from orchestrator.services.credit_policy import Thresholds
from orchestrator.services.pagination import page
from orchestrator.triton.credit_client import CreditAnswer

MAX_REASONS = 3


def fields_of(applicants: list[dict]) -> np.ndarray:
    """Checked applicants as the ensemble's `fields` tensor, int64 [N, len(FIELDS)]."""
    return np.array([fields_row(a) for a in applicants], dtype=np.int64)


def reasons(applicant: dict, contributions: np.ndarray) -> list[dict]:
    """The features that raised this applicant's risk most, largest first."""
    order = np.argsort(-contributions, kind="stable")[:MAX_REASONS]
    found = []
    for index in order:
        if contributions[index] <= 0:
            break
        name = FEATURES[index]
        found.append({
            "field": name,
            "text": f"{BY_NAME[name].words}: {applicant[name]}",
            "value": applicant[name],
            "contribution": round(float(contributions[index]), 4),
        })  # fmt: skip
    return found


def store_scores(
    session: Session,
    tenant_id: int,
    key_id: int,
    applicants: list[dict],
    answer: CreditAnswer,
    cut: Thresholds,
) -> list[ScoreResult]:
    rows = []
    for applicant, probability, contributions in zip(
        applicants, answer.probabilities, answer.contributions, strict=True
    ):
        rows.append(
            CreditScore(
                tenant_id=tenant_id,
                key_id=key_id,
                applicant=applicant,
                model_version=answer.model_version,
                probability_of_default=round(float(probability), 6),
                score=score(float(probability)),
                decision=cut.decision(float(probability)),
                reasons=reasons(applicant, contributions),
            )
        )
    session.add_all(rows)
    session.commit()
    return [ScoreResult.model_validate(r, from_attributes=True) for r in rows]


def get_score(session: Session, tenant_id: int, score_id: int) -> ScoreRecord:
    row = session.get(CreditScore, score_id)
    if row is None or row.tenant_id != tenant_id:
        raise NotFound(f"no credit score {score_id}", param="score_id")
    return ScoreRecord.model_validate(row, from_attributes=True)


def list_scores(
    session: Session, tenant_id: int, *, decision: str | None, limit: int, cursor: str | None
) -> ScorePage:
    query = select(CreditScore).where(CreditScore.tenant_id == tenant_id)
    if decision is not None:
        query = query.where(CreditScore.decision == decision)
    rows, next_cursor = page(session, query, CreditScore.id, limit, cursor)
    return ScorePage(
        data=[ScoreRecord.model_validate(r, from_attributes=True) for r in rows],
        next_cursor=next_cursor,
    )
