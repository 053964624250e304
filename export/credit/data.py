"""The Taiwan credit card holders (UCI 350), read where they lie (`EXPORT_CREDIT_DIR`), never
copied, with the issue's fixed split and this project's validation split:

- test: `ID` above 24,000 (the last 6,000 rows), never trained on or chosen by;
- validation: `ID` 20,001 to 24,000 (the 4,000 rows before them), for early stopping, the
  choice between models and the decision thresholds: contiguous like the test split, so that
  it is as far from the training rows as the test split is;
- training: `ID` 1 to 20,000.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from contracts.credit import FEATURES, FIELD_NAMES

TAIWAN_FILE = "default_of_credit_card_clients.csv"
TARGET = "default payment next month"
TEST_FROM_ID, VALIDATION_FROM_ID = 24_001, 20_001


@dataclass(frozen=True)
class CreditSplit:
    fields: pd.DataFrame  # every applicant field, int64
    labels: np.ndarray  # int64 [N], 1 defaulted (Taiwan: next month; German: a bad credit)
    feature_names: tuple[str, ...] = FEATURES  # the fields the model reads, in its order

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def features(self) -> np.ndarray:
        """The model's input, float32 [N, len(feature_names)]."""
        return self.fields[list(self.feature_names)].to_numpy(dtype=np.float32)

    def head(self, n: int | None) -> "CreditSplit":
        if n is None:
            return self
        return CreditSplit(self.fields.iloc[:n], self.labels[:n], self.feature_names)

    def take(self, rows: np.ndarray) -> "CreditSplit":
        fields = self.fields.iloc[rows].reset_index(drop=True)
        return CreditSplit(fields, self.labels[rows], self.feature_names)


def load_taiwan(folder: Path) -> dict[str, CreditSplit]:
    path = folder / TAIWAN_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: the credit data is read in place (set EXPORT_CREDIT_DIR)"
        )
    # the sheet's two header rows: codes (X1..X23, Y), then names
    table = pd.read_csv(path, header=1, encoding="utf-8-sig")
    table.columns = [c.lower() if c != TARGET else c for c in table.columns]
    missing = set(FIELD_NAMES) - set(table.columns)
    if missing:
        raise ValueError(f"{path}: columns missing: {sorted(missing)}")
    ids = table["id"].to_numpy()
    masks = {
        "train": ids < VALIDATION_FROM_ID,
        "val": (ids >= VALIDATION_FROM_ID) & (ids < TEST_FROM_ID),
        "test": ids >= TEST_FROM_ID,
    }
    return {
        name: CreditSplit(
            table.loc[mask, list(FIELD_NAMES)].reset_index(drop=True).astype(np.int64),
            table.loc[mask, TARGET].to_numpy(dtype=np.int64),
        )
        for name, mask in masks.items()
    }


GERMAN_FILE = "german.data"
# german.doc's attributes in order; coded ones (A11, A34, ...) become their number
GERMAN_COLUMNS = (
    "checking_account", "duration_months", "credit_history", "purpose", "credit_amount",
    "savings", "employment_since", "installment_rate", "personal_status_sex", "other_debtors",
    "residence_since", "property", "age", "other_installment_plans", "housing",
    "existing_credits", "job", "people_liable", "telephone", "foreign_worker",
)  # fmt: skip
# Not model inputs, as `sex` and `marriage` are not for Taiwan: they combine sex and marital
# status (attribute 9).
GERMAN_EXCLUDED = ("personal_status_sex",)
# german.doc's cost matrix: accepting a bad applicant costs 5, refusing a good one 1
GERMAN_COST_ACCEPT_BAD, GERMAN_COST_REFUSE_GOOD = 5.0, 1.0


def load_german(folder: Path) -> CreditSplit:
    """The 1,000 German applicants (Statlog), bad credit as label 1; no fixed split."""
    path = folder / GERMAN_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: the credit data is read in place (set EXPORT_CREDIT_DIR)"
        )
    table = pd.read_csv(path, sep=" ", header=None)
    if table.shape != (1000, 21):
        raise ValueError(f"{path}: {table.shape}, not 1,000 rows of 21 columns")
    fields = table.iloc[:, :20].copy()
    fields.columns = list(GERMAN_COLUMNS)
    for column in fields.columns:  # "A143" → 143: the codes are ordered within an attribute
        if not pd.api.types.is_numeric_dtype(fields[column]):
            fields[column] = fields[column].str.removeprefix("A").astype(np.int64)
    features = tuple(c for c in GERMAN_COLUMNS if c not in GERMAN_EXCLUDED)
    labels = (table.iloc[:, 20].to_numpy() == 2).astype(np.int64)
    return CreditSplit(fields.astype(np.int64), labels, features)
