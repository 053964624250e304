"""What a ticket says beyond its intent, read at intake without Triton: its language, its
sentiment, and whether it is an auto-reply or bulk mail that needs no human. The confidence
band comes with the triage (services/tickets.py, store_triage)."""

from collections.abc import Mapping
from dataclasses import dataclass

from orchestrator.services.ticket_signals.automated import Automation, automation_of
from orchestrator.services.ticket_signals.language import identify_language
from orchestrator.services.ticket_signals.sentiment import sentiment


@dataclass(frozen=True)
class TicketSignals:
    language: str | None  # ISO 639-1; None when unsure
    sentiment: str  # sentiment.LEVELS
    automation: Automation


def signals_of(
    subject: str, body: str, headers: Mapping[str, str] | None = None, sender: str | None = None
) -> TicketSignals:
    text = f"{subject}\n{body}"
    language = identify_language(text)
    return TicketSignals(
        language=language,
        sentiment=sentiment(text, language),
        automation=automation_of(subject, body, headers, sender),
    )
