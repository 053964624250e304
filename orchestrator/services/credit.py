"""Credit scoring: the model's answer for each applicant made a score, a decision under the
tenant's policy and its reasons in words, and stored for audit (who, when, the fields sent,
the model version, the result)."""

import numpy as np
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from contracts.credit import BY_NAME, FEATURES, Thresholds, fields_row, score
from orchestrator.db.models import CreditScore, utcnow
from orchestrator.errors import NotFound
from orchestrator.schemas.credit import ScorePage, ScoreRecord, ScoreResult
from orchestrator.services.pagination import page
from orchestrator.triton.credit_client import CreditAnswer

MAX_REASONS = 3


def fields_of(applicants: list[dict]) -> np.ndarray:
    """Checked applicants as the ensemble's `fields` tensor, int64 [N, len(FIELDS)]."""
    return np.array([fields_row(a) for a in applicants], dtype=np.int64)


def reasons(applicants: list[dict], contributions: np.ndarray) -> list[list[dict]]:
    """Per applicant, the features that raised its risk most, largest first (at most
    MAX_REASONS; those that lowered it are not reasons)."""
    tops = np.argsort(-contributions, axis=1, kind="stable")[:, :MAX_REASONS]
    found = []
    for applicant, top, row in zip(applicants, tops, contributions, strict=True):
        names = [(FEATURES[i], float(row[i])) for i in top if row[i] > 0]
        found.append([
            {
                "field": name,
                "text": f"{BY_NAME[name].words}: {applicant[name]}",
                "value": applicant[name],
                "contribution": round(contribution, 4),
            }
            for name, contribution in names
        ])  # fmt: skip
    return found


def store_scores(
    session: Session,
    tenant_id: int,
    key_id: int,
    applicants: list[dict],
    answer: CreditAnswer,
    cut: Thresholds,
) -> list[ScoreResult]:
    """One row per applicant, in one multi-row INSERT (a thousand ORM objects cost ~50 ms)."""
    now = utcnow()
    rows = []
    explained = reasons(applicants, answer.contributions)
    for applicant, probability, why in zip(
        applicants, answer.probabilities, explained, strict=True
    ):
        p = float(probability)
        rows.append({
            "tenant_id": tenant_id,
            "key_id": key_id,
            "applicant": applicant,
            "model_version": answer.model_version,
            "probability_of_default": round(p, 6),
            "score": score(p),
            "decision": cut.decision(p),
            "reasons": why,
            "created_at": now,
        })  # fmt: skip
    ids = session.scalars(
        insert(CreditScore).returning(CreditScore.id, sort_by_parameter_order=True), rows
    ).all()
    session.commit()
    return [ScoreResult(id=i, **row) for i, row in zip(ids, rows, strict=True)]


def get_score(session: Session, tenant_id: int, score_id: int) -> ScoreRecord:
    row = session.get(CreditScore, score_id)
    if row is None or row.tenant_id != tenant_id:
        raise NotFound(f"no credit score {score_id}", param="score_id")
    return ScoreRecord.model_validate(row, from_attributes=True)


def set_outcome(session: Session, tenant_id: int, score_id: int, defaulted: bool) -> ScoreRecord:
    row = session.get(CreditScore, score_id)
    if row is None or row.tenant_id != tenant_id:
        raise NotFound(f"no credit score {score_id}", param="score_id")
    row.defaulted, row.outcome_at = defaulted, utcnow()
    session.commit()
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
