"""A triage's confidence band (contracts/bands.py): high, medium or low, from the thresholds
`export bands` wrote beside the triage version that predicted (`ticket_intent/<v>/bands.json`).
A version without its own bands uses version 1's; a repository with none gives no band (null)
until `python -m export bands` runs. Read once per version and process."""

from functools import cache
from pathlib import Path

from contracts.bands import BandThresholds, bands_file
from contracts.models import BASE_TRIAGE_VERSION


@cache
def _repository() -> Path:
    from orchestrator.settings import TritonSettings

    return TritonSettings().model_repository


@cache
def thresholds_of(repository: Path, version: str | None) -> BandThresholds | None:
    for candidate in (version, str(BASE_TRIAGE_VERSION)):
        path = repository / bands_file(candidate or BASE_TRIAGE_VERSION)
        if path.is_file():
            return BandThresholds.read(path)
    return None


def confidence_band(
    confidence: float | None, version: str | None, repository: Path | None = None
) -> str | None:
    """The band of a triage's confidence; None without a confidence or without bands."""
    if confidence is None:
        return None
    thresholds = thresholds_of(repository or _repository(), version)
    return thresholds.band(confidence) if thresholds else None
