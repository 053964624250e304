"""Ticket logic on top of the predicted intent: department, ticket type and priority.

`data/taxonomy.yaml` maps each intent to a department, a type and a base priority; urgency
cues found in the ticket's text raise the priority by one level, never above `urgent`.
"""

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

from orchestrator.settings import PROJECT_ROOT

DEFAULT_TAXONOMY = PROJECT_ROOT / "data" / "taxonomy.yaml"
PRIORITIES = ("low", "normal", "high", "urgent")
TICKET_TYPES = ("incident", "question", "request", "complaint")


class TaxonomyError(ValueError):
    pass


@dataclass(frozen=True)
class Routing:
    department: str
    type: str
    priority: str
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class UrgencyCue:
    phrases: tuple[str, ...]
    raise_by: int
    reason: str


@dataclass(frozen=True)
class Taxonomy:
    departments: dict[str, str]
    intents: dict[str, Routing]
    cues: tuple[UrgencyCue, ...]

    def route(self, intent: str, text: str = "") -> Routing:
        """Department, type and priority for a ticket of `intent` whose text is `text`."""
        base = self.intents.get(intent)
        if base is None:
            raise TaxonomyError(f"unknown intent {intent!r}")
        lowered = text.lower().replace("\u2019", "'")
        matched = [cue for cue in self.cues if any(p in lowered for p in cue.phrases)]
        if not matched:
            return base
        # Cues do not add up: the strongest single raise applies.
        level = min(
            PRIORITIES.index(base.priority) + max(c.raise_by for c in matched), len(PRIORITIES) - 1
        )
        return Routing(
            base.department, base.type, PRIORITIES[level], tuple(c.reason for c in matched)
        )


def load_taxonomy(path: Path = DEFAULT_TAXONOMY) -> Taxonomy:
    raw = yaml.safe_load(path.read_text())
    departments = dict(raw["departments"])
    problems, intents = [], {}
    for name, entry in raw["intents"].items():
        if entry.get("department") not in departments:
            problems.append(f"{name}: unknown department {entry.get('department')!r}")
        if entry.get("type") not in TICKET_TYPES:
            problems.append(f"{name}: unknown type {entry.get('type')!r}")
        if entry.get("priority") not in PRIORITIES:
            problems.append(f"{name}: unknown priority {entry.get('priority')!r}")
        intents[name] = Routing(entry.get("department"), entry.get("type"), entry.get("priority"))
    if problems:
        raise TaxonomyError(f"{path}: " + "; ".join(problems))
    cues = tuple(
        UrgencyCue(tuple(p.lower() for p in c["phrases"]), int(c.get("raise_by", 1)), c["reason"])
        for c in raw.get("urgency_cues", [])
    )
    return Taxonomy(departments, intents, cues)


@cache
def default_taxonomy() -> Taxonomy:
    return load_taxonomy()
