"""`python -m export xray-publish`: make an x-ray candidate that passed its gate servable
beside production, as export/step_publish.py lays out one-step models: `xray_classifier/<v>/`
with the served configs, and the ensemble `xray_diagnosis_v<v>`. xray_preprocess is shared by
every version."""

from pathlib import Path

from contracts.xray import XRAY_CLASSIFIER, XRAY_ENSEMBLE
from export.step_publish import (
    OneStepModel,
    PublishedVersion,
    newest_step_card,
    publish_step,
    served_step_versions,
    unpublish_step,
)

XRAY = OneStepModel(XRAY_CLASSIFIER, XRAY_ENSEMBLE, noun="xray", retrain="xray-retrain")


def publish_xray(card_path: Path, repository: Path) -> PublishedVersion:
    return publish_step(XRAY, card_path, repository)


def newest_xray_card(candidates: Path) -> Path:
    return newest_step_card(XRAY, candidates)


def served_xray_versions(repository: Path) -> list[int]:
    return served_step_versions(XRAY, repository)


def unpublish_xray(repository: Path) -> None:
    unpublish_step(XRAY, repository)
