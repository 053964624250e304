"""Traffic for drift tests: ordinary Banking77 test texts, drifted texts, tickets stored as the
worker stores them, agents' corrections; and which drift alerts a registry's gauges fire."""

import csv
import itertools
import re
from datetime import datetime, timedelta

import yaml
from sqlalchemy.orm import Session

from contracts import PROJECT_ROOT
from orchestrator.db.models import ApiKey, DriftRun, Feedback, Tenant, Ticket, utcnow
from orchestrator.services.tickets import store_triage
from orchestrator.services.triage import triage_of
from orchestrator.settings import DriftSettings
from orchestrator.triton.triage_client import Prediction

_DE = (
    "Wie lange muss ich {} im Ofen backen?",
    "Kann ich {} schon am Vortag vorbereiten?",
    "Welche Zutaten brauche ich für {} und wo kaufe ich sie?",
    "Mein {} ist wieder zu trocken geworden, was mache ich falsch?",
)
_DE_DISHES = ("den Apfelkuchen", "das Brot", "den Schweinebraten", "die Lasagne", "den Auflauf")
_ES = (
    "¿Cuánto tiempo hay que hornear {} en el horno?",
    "¿Qué ingredientes necesito para preparar {} para seis personas?",
    "¿Se puede congelar {} que sobró de la cena?",
)
_ES_DISHES = ("la tarta de queso", "el pan casero", "la paella", "el pollo asado", "la lasaña")
_EN = (
    "How long should I roast the {} at 180 degrees?",
    "Can I freeze leftover {} for next week?",
    "What herbs go best with {} in a slow cooker?",
)
_EN_DISHES = ("lamb shoulder", "pumpkin soup", "chicken curry", "beef stew", "vegetable lasagne")


def drifted_texts() -> list[str]:
    """80 texts of another domain (cooking) in German, Spanish and English, none alike."""
    texts = [t.format(d) for t, d in itertools.product(_DE, _DE_DISHES)]
    texts += [t.format(d) for t, d in itertools.product(_ES, _ES_DISHES)]
    texts += [t.format(d) for t, d in itertools.product(_EN, _EN_DISHES)]
    texts += [f"{t} Danke und viele Grüße aus Köln!" for t in texts[:30]]
    return texts[:80]


def banking77_test_texts(count: int, skip: int = 0) -> list[str]:
    """`count` texts of Banking77's test split, across its intents in turn (it is grouped by
    intent, so its head holds a handful of intents only), after the first `skip` of that order
    (the drift reference is its head)."""
    path = DriftSettings().reference_csv.with_name("test.csv")
    by_intent: dict[str, list[str]] = {}
    with path.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            by_intent.setdefault(row["category"], []).append(row["text"].strip())
    spread = itertools.chain.from_iterable(itertools.zip_longest(*by_intent.values()))
    return [t for t in spread if t][skip : skip + count]


def add_tenant(session: Session, name: str) -> tuple[int, int]:
    """(tenant id, id of an agent key of it)."""
    tenant = Tenant(name=name)
    session.add(tenant)
    session.flush()
    key = ApiKey(tenant_id=tenant.id, digest=f"{name:x<64}"[:64], scopes="tickets:write")
    session.add(key)
    session.commit()
    return tenant.id, key.id


def add_ticket(
    session: Session,
    tenant_id: int,
    text: str,
    prediction: Prediction | None,
    created_at: datetime | None = None,
) -> Ticket:
    """A ticket as the worker leaves it: triaged by `prediction` (None: not triaged yet)."""
    ticket = Ticket(
        tenant_id=tenant_id,
        channel="api",
        subject=text,
        body="",
        created_at=created_at or utcnow(),
    )
    if prediction is not None:
        store_triage(ticket, triage_of(prediction, text))
    session.add(ticket)
    session.flush()
    return ticket


def correct_intent(session: Session, ticket: Ticket, key_id: int, intent: str) -> None:
    """An agent's correction, as PATCH /v1/tickets/{id} stores it."""
    session.add(
        Feedback(
            tenant_id=ticket.tenant_id,
            ticket_id=ticket.id,
            key_id=key_id,
            field="intent",
            old_value=ticket.intent,
            new_value=intent,
            model_version=ticket.model_version,
            model_confidence=ticket.confidence,
        )
    )
    ticket.intent = intent


def hours_ago(hours: float) -> datetime:
    return utcnow() - timedelta(hours=hours)


DRIFT_RULE = re.compile(r"max by \(tenant\) \((\w+)\) >= ([0-9.]+)")


def firing_drift_alerts(registry) -> set[tuple[str, str, str]]:
    """(alert, severity, tenant) of every rule of deploy/prometheus/alerts.yml's support-drift
    group that the registry's gauges satisfy: those rules are all `max by (tenant) (gauge) >=
    level`, which one sample per tenant evaluates exactly (promtool checks the rules
    themselves in tests/deploy)."""
    rules = yaml.safe_load((PROJECT_ROOT / "deploy/prometheus/alerts.yml").read_text())
    (group,) = [g for g in rules["groups"] if g["name"] == "support-drift"]
    firing = set()
    for rule in group["rules"]:
        match = DRIFT_RULE.fullmatch(rule["expr"].strip())
        assert match, f"{rule['alert']}: {rule['expr']!r} is not the form evaluated here"
        metric, level = match.group(1), float(match.group(2))
        for family in registry.collect():
            for sample in family.samples:
                if sample.name == metric and sample.value >= level:
                    firing.add((rule["alert"], rule["labels"]["severity"], sample.labels["tenant"]))
    return firing


def past_run(report_file: str, age: timedelta, pass_id: str = "p" * 32) -> DriftRun:
    """A stored run of nothing drifted, `age` old, with its report file's name."""
    return DriftRun(
        pass_id=pass_id,
        reference_size=500,
        current_size=60,
        drift_share=0.0,
        prediction_drift_score=0.0,
        embedding_drift_score=0.0,
        drifted=False,
        report_file=report_file,
        seconds=1.0,
        created_at=utcnow() - age,
    )
