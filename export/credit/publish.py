"""`python -m export credit-publish`: make a credit candidate that passed its gate servable
beside production, as export/step_publish.py lays out one-step models: `credit_model/<v>/`
with the served configs, and the ensemble `credit_scoring_v<v>`. credit_features is shared by
every version."""

from contracts.credit import CREDIT_ENSEMBLE, CREDIT_MODEL
from export.step_publish import OneStepModel

CREDIT = OneStepModel(CREDIT_MODEL, CREDIT_ENSEMBLE, noun="credit", retrain="credit-retrain")
