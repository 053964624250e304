"""A ticket's history, oldest first: read from the ticket itself (arrival, triage), its
feedback rows (corrections) and its events (statuses set, drafts written again, the reply)."""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from orchestrator.db.models import Feedback, Ticket, TicketEvent


@dataclass(frozen=True)
class HistoryEntry:
    at: datetime
    what: str
    key_id: int | None = None  # the key that acted; None: the platform itself


def ticket_history(session: Session, ticket: Ticket) -> list[HistoryEntry]:
    entries = [HistoryEntry(ticket.created_at, f"Received by {ticket.channel}")]
    if ticket.processed_at is not None:
        entries.append(HistoryEntry(ticket.processed_at, _settled(ticket)))
    corrections = session.scalars(select(Feedback).where(Feedback.ticket_id == ticket.id))
    entries += [
        HistoryEntry(
            f.created_at,
            f"{f.field.capitalize()} corrected from {f.old_value} to {f.new_value}",
            f.key_id,
        )
        for f in corrections
    ]
    events = session.scalars(select(TicketEvent).where(TicketEvent.ticket_id == ticket.id))
    entries += [HistoryEntry(e.created_at, _event(e), e.key_id) for e in events]
    return sorted(entries, key=lambda entry: entry.at)


def _settled(ticket: Ticket) -> str:
    if ticket.intent is None and (ticket.auto_reply or ticket.spam):
        return "Filtered as " + ("an auto-reply" if ticket.auto_reply else "bulk mail")
    if ticket.intent is None:
        return "Processing failed"
    predicted = ticket.top[0]["intent"] if ticket.top else ticket.intent  # before corrections
    band = f", {ticket.confidence_band} confidence" if ticket.confidence_band else ""
    return f"Triaged as {predicted} by model {ticket.model_version}{band}"


def _event(event: TicketEvent) -> str:
    if event.kind == "status":
        return f"Status set to {event.detail}"
    if event.kind == "reply":
        return "Reply sent"
    if event.kind == "redraft":
        return f"Draft written again by {event.detail}"
    return event.kind
