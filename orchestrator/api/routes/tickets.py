"""Tickets: submit (async or wait), read, list, correct, and regenerate the draft."""

import json
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, StreamingResponse

from orchestrator.api.deps import SessionDep, require
from orchestrator.api.keycache import Caller
from orchestrator.api.params import IdPath
from orchestrator.db.models import Ticket, TicketEvent
from orchestrator.errors import ApiError
from orchestrator.schemas.tickets import (
    FeedbackPage,
    HistoryEntryPublic,
    Sentiment,
    TicketAccepted,
    TicketCreate,
    TicketHistory,
    TicketPage,
    TicketPublic,
    TicketStatus,
    TicketUpdate,
)
from orchestrator.services import tickets
from orchestrator.services.configs import draft_options
from orchestrator.services.drafts import Draft, LetterPart, Restart, stream_draft
from orchestrator.services.generation import GenerationTimer
from orchestrator.services.settled import SettledTickets
from orchestrator.services.ticket_history import ticket_history
from orchestrator.services.tickets import Stored, public

router = APIRouter(prefix="/v1/tickets", tags=["tickets"])
feedback_router = APIRouter(prefix="/v1", tags=["tickets"])
FINISHED = ("done", "failed", "filtered")

WriteKey = Annotated[Caller, require("tickets:write")]
ReadKey = Annotated[Caller, require("tickets:read")]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=200,
        description="A repeat with the same key returns the first ticket instead of a new one.",
    ),
]


@router.post(
    "",
    status_code=202,
    response_model=TicketAccepted,
    responses={
        200: {"model": TicketPublic, "description": "An earlier ticket with this key or id"},
        201: {"model": TicketPublic, "description": "With `wait=true`: the finished ticket"},
    },
)
async def create_ticket(
    data: TicketCreate,
    request: Request,
    key: WriteKey,
    idempotency_key: IdempotencyKey = None,
    wait: Annotated[bool, Query(description="Answer when the ticket is drafted")] = False,
    timeout: Annotated[float | None, Query(gt=0, le=300, description="Seconds to wait")] = None,
):
    """Store a ticket durably (202), or with `wait=true` answer with the finished ticket."""
    stored = await run_in_threadpool(_store, request, key, data, idempotency_key)
    return await respond_stored(request, stored, wait, timeout)


def _store(request: Request, key: Caller, data: TicketCreate, idempotency_key) -> Stored:
    with request.app.state.sessions() as session:
        return tickets.create_ticket(
            session, key.tenant_id, data, idempotency_key, environment=key.environment
        )


async def respond_stored(request: Request, stored: Stored, wait: bool, timeout: float | None):
    """202 {id, status} for a new ticket; 201 once finished with `wait`; 200 for a repeat."""
    ticket = stored.ticket
    if not stored.created:
        return JSONResponse(public(ticket).model_dump(mode="json"), status_code=200)
    worker = getattr(request.app.state, "worker", None)
    if worker is not None:
        worker.wake()
    if wait:
        settings = request.app.state.settings
        finished = await _wait_finished(
            request, ticket.id, timeout or settings.ticket_wait_timeout_s
        )
        if finished is not None:
            return JSONResponse(finished.model_dump(mode="json"), status_code=201)
    accepted = TicketAccepted(id=ticket.id, status=TicketStatus(ticket.status))
    return JSONResponse(
        accepted.model_dump(mode="json"),
        status_code=202,
        headers={"Location": f"/v1/tickets/{ticket.id}"},
    )


async def _wait_finished(request: Request, ticket_id: int, timeout_s: float) -> TicketPublic | None:
    found: list[Ticket] = []

    def read() -> Ticket:
        with request.app.state.sessions() as session:
            return session.get(Ticket, ticket_id)

    async def finished() -> bool:
        found[:] = [await run_in_threadpool(read)]
        return found[0].status in FINISHED

    settled: SettledTickets = request.app.state.settled
    if await settled.wait(ticket_id, finished, timeout_s):
        return public(found[0])
    return None


@router.get("/{ticket_id}", response_model=TicketPublic)
def get_ticket(ticket_id: IdPath, session: SessionDep, key: ReadKey):
    return public(tickets.get_ticket(session, key.tenant_id, ticket_id))


@router.get("/{ticket_id}/history", response_model=TicketHistory)
def get_history(ticket_id: IdPath, session: SessionDep, key: ReadKey):
    """What happened to the ticket, oldest first: arrival, triage, agents' corrections,
    statuses set, drafts written again, the reply sent (the workspace shows the same)."""
    ticket = tickets.get_ticket(session, key.tenant_id, ticket_id)
    entries = ticket_history(session, ticket)
    return TicketHistory(data=[HistoryEntryPublic(**vars(entry)) for entry in entries])


@router.get("", response_model=TicketPage)
def list_tickets(
    session: SessionDep,
    key: ReadKey,
    status: TicketStatus | None = None,
    department: str | None = None,
    priority: str | None = None,
    language: Annotated[str | None, Query(pattern=r"^[a-z]{2,3}$")] = None,
    sentiment: Sentiment | None = None,
    band: Annotated[
        Literal["high", "medium", "low"] | None,
        Query(description="The triage's confidence band; `low` is the review queue"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
):
    """The tenant's tickets, newest first, filtered; follow `next_cursor` for more."""
    rows, next_cursor = tickets.list_tickets(
        session,
        key.tenant_id,
        status=status.value if status else None,
        department=department,
        priority=priority,
        language=language,
        sentiment=sentiment.value if sentiment else None,
        band=band,
        limit=limit,
        cursor=cursor,
    )
    return TicketPage(data=[public(t) for t in rows], next_cursor=next_cursor)


@router.patch("/{ticket_id}", response_model=TicketPublic)
def update_ticket(ticket_id: IdPath, changes: TicketUpdate, session: SessionDep, key: WriteKey):
    """An agent's corrections of intent, department, priority or status."""
    ticket = tickets.get_ticket(session, key.tenant_id, ticket_id)
    return public(tickets.apply_update(session, ticket, changes, key.id))


@router.post(
    "/{ticket_id}/draft",
    response_model=TicketPublic,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def regenerate_draft(
    ticket_id: IdPath,
    request: Request,
    key: WriteKey,
    stream: Annotated[
        bool, Query(description="Server-sent events as the draft is written")
    ] = False,
):
    """Write the draft again (after a correction of the intent, say), with the drafts
    configuration of the ticket's environment, whichever key asks."""
    ticket = await triaged_ticket(request, key.tenant_id, ticket_id)
    events = draft_events(request, ticket, key.id)
    if stream:
        return StreamingResponse(events, media_type="text/event-stream")
    async for _ in events:
        pass
    return public(await run_in_threadpool(_load, request, key.tenant_id, ticket_id))


def _load(request: Request, tenant_id: int, ticket_id: int) -> Ticket:
    with request.app.state.sessions() as session:
        return tickets.get_ticket(session, tenant_id, ticket_id)


async def triaged_ticket(request: Request, tenant_id: int, ticket_id: int) -> Ticket:
    """The tenant's ticket, to draft for: 409 until the worker has triaged it."""
    ticket = await run_in_threadpool(_load, request, tenant_id, ticket_id)
    if ticket.intent is None:
        raise ApiError(409, f"ticket {ticket_id} is not triaged yet", code="not_triaged")
    return ticket


async def draft_events(request: Request, ticket: Ticket, key_id: int):
    """SSE: `delta` events with text as it is written (a `restart` event replaces all the
    text so far with its own), then one `draft` event with the whole letter, then [DONE].
    The workspace's "Regenerate" streams the same (orchestrator/web)."""
    settings, timer = request.app.state.settings, GenerationTimer()
    config = await request.app.state.configs.drafts(ticket.environment)
    async for item in stream_draft(
        request.app.state.llm,
        ticket.intent,
        ticket.subject,
        ticket.body,
        timeout_s=settings.draft_timeout_s,
        **draft_options(config, settings),
    ):
        if isinstance(item, Draft):
            if item.generation is not None:
                timer.record(request.app.state.metrics, "draft", item.generation)
            await run_in_threadpool(_save_draft, request, ticket.id, item, key_id)
            yield _sse("draft", {"text": item.text, "source": item.source})
        elif isinstance(item, Restart):
            yield _sse("restart", {"text": item.text})
        elif isinstance(item, LetterPart):  # not the model's: no token to time
            yield _sse("delta", {"text": item.text})
        else:
            timer.token()
            yield _sse("delta", {"text": item})
    yield "data: [DONE]\n\n"


def _save_draft(request: Request, ticket_id: int, draft: Draft, key_id: int) -> None:
    with request.app.state.sessions() as session:
        ticket = session.get(Ticket, ticket_id)
        ticket.draft_text, ticket.draft_source = draft.text, draft.source
        session.add(
            TicketEvent(ticket_id=ticket_id, key_id=key_id, kind="redraft", detail=draft.source)
        )
        session.commit()


@feedback_router.get("/feedback", response_model=FeedbackPage)
def list_feedback(
    session: SessionDep,
    key: ReadKey,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: str | None = None,
):
    """Agents' corrections with the ticket texts: labelled examples for the next training."""
    return tickets.list_feedback(session, key.tenant_id, limit=limit, cursor=cursor)


def _sse(event: str, data: dict) -> str:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"
