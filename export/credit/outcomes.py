"""Lenders' outcomes, read from the orchestrator's database for retraining the credit model:
every stored scoring whose `defaulted` the lender reported (PUT /v1/credit/scores/{id}/outcome),
with the applicant's fields as they were scored.

Read-only, with SQLAlchemy Core over the one table it needs, as export/corrections.py reads
agents' corrections.
"""

from datetime import datetime

import numpy as np
import pandas as pd
from sqlalchemy import JSON, Boolean, DateTime, Integer, String, column, select, table

from contracts.credit import FIELD_NAMES
from export.corrections import as_utc, read_rows
from export.credit.data import CreditSplit

CREDIT_SCORES = table(
    "credit_scores",
    column("id", Integer),
    column("applicant", JSON),
    column("decision", String),
    column("defaulted", Boolean),
    column("outcome_at", DateTime),
)


class Outcomes:
    """Applicants with a reported outcome, oldest report first."""

    def __init__(self, split: CreditSplit, ids: list[int], reported_at: list[datetime],
                 decisions: list[str]):  # fmt: skip
        self.split, self.ids, self.reported_at, self.decisions = split, ids, reported_at, decisions

    def __len__(self) -> int:
        return len(self.ids)

    def split_recent(self, fraction: float) -> tuple[CreditSplit, CreditSplit]:
        """(older for training, the most recent `fraction` held out for the gate)."""
        cut = len(self) - round(len(self) * fraction)
        return self.split.take(np.arange(cut)), self.split.take(np.arange(cut, len(self)))


def read_outcomes(url: str) -> Outcomes:
    """Raises CorrectionsUnavailable when the database cannot be read."""
    query = (
        select(CREDIT_SCORES)
        .where(CREDIT_SCORES.c.defaulted.is_not(None))
        .order_by(CREDIT_SCORES.c.outcome_at, CREDIT_SCORES.c.id)
    )
    rows = read_rows(url, query, "credit outcomes", "0014_credit_outcomes")
    fields = pd.DataFrame(
        [[row["applicant"][name] for name in FIELD_NAMES] for row in rows],
        columns=list(FIELD_NAMES),
        dtype=np.int64,
    )
    labels = np.array([int(row["defaulted"]) for row in rows], dtype=np.int64)
    return Outcomes(
        CreditSplit(fields, labels),
        ids=[row["id"] for row in rows],
        reported_at=[as_utc(row["outcome_at"]) for row in rows],
        decisions=[row["decision"] for row in rows],
    )
