"""Tickets: storing one with its job in one transaction, reading, listing and correcting."""

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from orchestrator.db.models import Feedback, Job, Ticket, TicketEvent, utcnow
from orchestrator.environments import DEFAULT_ENVIRONMENT, Environment
from orchestrator.errors import Conflict, InvalidInput, NotFound
from orchestrator.schemas.tickets import (
    AGENT_STATUSES,
    DraftPublic,
    FeedbackItem,
    FeedbackPage,
    ReplyPublic,
    TicketCreate,
    TicketPublic,
    TicketStatus,
    TicketUpdate,
)
from orchestrator.services.pagination import page
from orchestrator.services.taxonomy import PRIORITIES, default_taxonomy
from orchestrator.services.ticket_signals import signals_of
from orchestrator.services.triage import TriageResult


@dataclass(frozen=True)
class Stored:
    ticket: Ticket
    created: bool  # False: an earlier ticket with the same idempotency key or external id


def create_ticket(
    session: Session,
    tenant_id: int,
    data: TicketCreate,
    idempotency_key: str | None = None,
    *,
    attachments: list[dict] | None = None,
    raw_message: bytes | None = None,
    environment: str = DEFAULT_ENVIRONMENT,
    headers: Mapping[str, str] | None = None,
) -> Stored:
    """Store the ticket and its job together, or return the ticket they already made. An
    auto-reply or bulk mail (`headers`: an e-mail's, names in lower case) is stored settled,
    `filtered`, with no job: nobody drafts or reads it.

    Whatever the caller added to `session` beforehand commits with them, or not at all.
    """
    existing = _existing(session, tenant_id, data.external_id, idempotency_key)
    if existing is not None:
        return Stored(existing, created=False)
    signals = signals_of(data.subject, data.body, headers, data.customer_email)
    automated = signals.automation.auto_reply or signals.automation.spam
    ticket = Ticket(
        tenant_id=tenant_id,
        channel=data.channel.value,
        subject=data.subject,
        body=data.body,
        customer_email=data.customer_email,
        external_id=data.external_id,
        idempotency_key=idempotency_key,
        extra=data.metadata,
        attachments=attachments,
        raw_message=raw_message,
        environment=Environment(environment).value,
        language=signals.language,
        sentiment=signals.sentiment,
        auto_reply=signals.automation.auto_reply,
        spam=signals.automation.spam,
        automation_reasons=signals.automation.reasons or None,
    )
    if automated:
        ticket.status, ticket.processed_at = TicketStatus.filtered.value, utcnow()
    session.add(ticket)
    try:
        session.flush()
        if not automated:
            session.add(Job(ticket_id=ticket.id, tenant_id=tenant_id))
        session.commit()
    except IntegrityError:  # the same key raced us; the winner's ticket is the answer
        session.rollback()
        existing = _existing(session, tenant_id, data.external_id, idempotency_key)
        if existing is None:
            raise
        return Stored(existing, created=False)
    return Stored(ticket, created=True)


def _existing(
    session: Session, tenant_id: int, external_id: str | None, idempotency_key: str | None
) -> Ticket | None:
    for column, value in (
        (Ticket.idempotency_key, idempotency_key),
        (Ticket.external_id, external_id),
    ):
        if value is not None:
            found = session.scalar(
                select(Ticket).where(Ticket.tenant_id == tenant_id, column == value)
            )
            if found is not None:
                return found
    return None


def get_ticket(session: Session, tenant_id: int, ticket_id: int) -> Ticket:
    """The tenant's ticket; another tenant's is as absent as one that never existed."""
    ticket = session.get(Ticket, ticket_id)
    if ticket is None or ticket.tenant_id != tenant_id:
        raise NotFound(f"no ticket {ticket_id}", param="id")
    return ticket


def list_tickets(
    session: Session,
    tenant_id: int,
    *,
    status: str | None,
    department: str | None,
    priority: str | None,
    limit: int,
    cursor: str | None,
    language: str | None = None,
    sentiment: str | None = None,
    band: str | None = None,
) -> tuple[list[Ticket], str | None]:
    """The tenant's tickets, filtered, newest first."""
    query = select(Ticket).where(Ticket.tenant_id == tenant_id)
    for column, value in (
        (Ticket.status, status),
        (Ticket.department, department),
        (Ticket.priority, priority),
        (Ticket.language, language),
        (Ticket.sentiment, sentiment),
        (Ticket.confidence_band, band),
    ):
        if value is not None:
            query = query.where(column == value)
    return page(session, query, Ticket.id, limit, cursor)


def apply_update(session: Session, ticket: Ticket, changes: TicketUpdate, key_id: int) -> Ticket:
    """Apply an agent's corrections; each changed triage field becomes a Feedback row."""
    fields = changes.model_dump(exclude_unset=True, exclude_none=True)
    _validate_update(fields)
    if "intent" in fields:
        route = default_taxonomy().route(fields["intent"])
        fields.setdefault("department", route.department)
        fields.setdefault("priority", route.priority)
        ticket.type = route.type
    for field, value in fields.items():
        value = value.value if hasattr(value, "value") else value
        old = getattr(ticket, field)
        if old == value:
            continue
        if field == "status":
            session.add(
                TicketEvent(ticket_id=ticket.id, key_id=key_id, kind="status", detail=value)
            )
        else:
            session.add(
                Feedback(
                    tenant_id=ticket.tenant_id,
                    ticket_id=ticket.id,
                    key_id=key_id,
                    field=field,
                    old_value=old,
                    new_value=value,
                    model_version=ticket.model_version,
                    model_confidence=ticket.confidence,  # corrections never change it
                )
            )
        setattr(ticket, field, value)
    ticket.updated_at = utcnow()
    session.commit()
    return ticket


def send_reply(session: Session, ticket: Ticket, text: str, key_id: int) -> Ticket:
    """An agent's reply, kept on the ticket, which it resolves; one per ticket. Sending it by
    mail is the help desk's outbound connector's job, not this service's."""
    if ticket.reply_text is not None:  # a form sent twice, or another agent was first
        raise Conflict(f"ticket {ticket.id} was answered already", code="answered")
    ticket.reply_text, ticket.replied_at = text, utcnow()
    session.add(TicketEvent(ticket_id=ticket.id, key_id=key_id, kind="reply"))
    return apply_update(session, ticket, TicketUpdate(status=TicketStatus.resolved), key_id)


def _validate_update(fields: dict) -> None:
    taxonomy = default_taxonomy()
    if "intent" in fields and fields["intent"] not in taxonomy.intents:
        raise InvalidInput(f"unknown intent {fields['intent']!r}", param="intent")
    if "department" in fields and fields["department"] not in taxonomy.departments:
        known = sorted(taxonomy.departments)
        raise InvalidInput(f"department must be one of {known}", param="department")
    if "priority" in fields and fields["priority"] not in PRIORITIES:
        raise InvalidInput(f"priority must be one of {list(PRIORITIES)}", param="priority")
    if "status" in fields and fields["status"] not in AGENT_STATUSES:
        allowed = [s.value for s in AGENT_STATUSES]
        raise InvalidInput(f"an agent may set status to {allowed}", param="status")


def list_feedback(session: Session, tenant_id: int, *, limit: int, cursor: str | None):
    query = (
        select(Feedback, Ticket)
        .join(Ticket, Feedback.ticket_id == Ticket.id)
        .where(Feedback.tenant_id == tenant_id)
    )
    rows, next_cursor = page(session, query, Feedback.id, limit, cursor)
    items = [
        FeedbackItem(
            id=f.id,
            ticket_id=t.id,
            key_id=f.key_id,
            text=f"{t.subject}\n{t.body}",
            field=f.field,
            old_value=f.old_value,
            new_value=f.new_value,
            model_version=f.model_version,
            model_confidence=f.model_confidence,
            created_at=f.created_at,
        )
        for f, t in rows
    ]
    return FeedbackPage(data=items, next_cursor=next_cursor)


def store_triage(ticket: Ticket, triage: TriageResult) -> None:
    ticket.intent, ticket.confidence = triage.intent, triage.confidence
    ticket.department, ticket.type, ticket.priority = (
        triage.department,
        triage.type,
        triage.priority,
    )
    ticket.top = [{"intent": intent, "score": score} for intent, score in triage.top]
    ticket.model_version = triage.model_version
    ticket.confidence_band = triage.band


def stored_triage(ticket: Ticket) -> TriageResult | None:
    """The triage store_triage wrote on the ticket, if any."""
    if ticket.intent is None:
        return None
    return TriageResult(
        intent=ticket.intent,
        confidence=ticket.confidence,
        department=ticket.department,
        type=ticket.type,
        priority=ticket.priority,
        top=tuple((item["intent"], item["score"]) for item in ticket.top or []),
        model_version=ticket.model_version,
        band=ticket.confidence_band,
    )


def public(ticket: Ticket) -> TicketPublic:
    triage = stored_triage(ticket)
    draft = None
    if ticket.draft_text:
        draft = DraftPublic(text=ticket.draft_text, source=ticket.draft_source)
    return TicketPublic(
        id=ticket.id,
        status=ticket.status,
        channel=ticket.channel,
        subject=ticket.subject,
        body=ticket.body,
        customer_email=ticket.customer_email,
        external_id=ticket.external_id,
        metadata=ticket.extra or {},
        triage=triage.public() if triage else None,
        draft=draft,
        error=ticket.error,
        created_at=ticket.created_at,
        updated_at=ticket.updated_at,
        processed_at=ticket.processed_at,
        attachments=ticket.attachments or [],
        environment=ticket.environment or DEFAULT_ENVIRONMENT,
        language=ticket.language,
        sentiment=ticket.sentiment,
        auto_reply=ticket.auto_reply,
        spam=ticket.spam,
        automation_reasons=ticket.automation_reasons or [],
        reply=ReplyPublic(text=ticket.reply_text, sent_at=ticket.replied_at)
        if ticket.reply_text is not None
        else None,
    )
