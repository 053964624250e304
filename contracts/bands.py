"""Confidence bands of a triage: how far an agent can trust the intent. `export bands` chooses
the two thresholds on held-out training texts and writes them beside the served model
(`ticket_intent/<v>/bands.json`); the orchestrator reads them to band every triage."""

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from contracts.models import INTENT_MODEL

BANDS = ("high", "medium", "low")


@dataclass(frozen=True)
class BandThresholds:
    high_from: float  # confidence at or above: "high"
    low_below: float  # confidence below: "low" (the review queue)

    def band(self, confidence: float) -> str:
        if confidence >= self.high_from:
            return "high"
        return "low" if confidence < self.low_below else "medium"

    def write(self, path: Path, report: dict) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"thresholds": asdict(self), **report}, indent=2) + "\n")

    @classmethod
    def read(cls, path: Path) -> "BandThresholds":
        return cls(**json.loads(path.read_text())["thresholds"])


def bands_file(version: int | str) -> str:
    """The bands of triage version `version`, relative to the repository."""
    return f"{INTENT_MODEL}/{version}/bands.json"
