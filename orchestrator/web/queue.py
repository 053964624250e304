"""The queue and the review queue: filters, rows, live updates (server-sent events) and the
status an agent sets from the keyboard."""

import asyncio
import json
import time
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response, StreamingResponse
from sqlalchemy import func, select

from orchestrator.api.params import IdPath
from orchestrator.db.models import Ticket
from orchestrator.errors import ApiError
from orchestrator.schemas.tickets import TicketStatus, TicketUpdate
from orchestrator.services import tickets
from orchestrator.web.auth import Reader, Writer
from orchestrator.web.pages import SECURITY_HEADERS, QueueFilters, render

router = APIRouter(prefix="/app", include_in_schema=False)
PAGE_SIZE = 50
MAX_EVENT_STREAMS = 200  # per process: each polls the database once a `web_events_poll_s`
KEEP_ALIVE_S = 15.0


def _filters(request: Request) -> QueueFilters:
    return QueueFilters.model_validate(dict(request.query_params))


Filters = Annotated[QueueFilters, Depends(_filters)]


@router.get("")
def queue(request: Request, signed: Reader, filters: Filters):
    return _queue_page(request, signed, filters, review=False)


@router.get("/review")
def review_queue(request: Request, signed: Reader, filters: Filters):
    """The tickets whose triage is least sure (the "low" band), for an agent to check."""
    return _queue_page(request, signed, filters.model_copy(update={"band": "low"}), review=True)


@router.get("/rows")
def rows(request: Request, signed: Reader, filters: Filters):
    """The queue's table body alone: what a live update swaps in."""
    found, next_cursor = _rows(request, signed, filters)
    return render(request, "_rows.html", tickets=found, next_cursor=next_cursor)


def _queue_page(request: Request, signed, filters: QueueFilters, review: bool):
    mark = changes_mark(request, signed.caller.tenant_id)  # before the rows: none missed
    found, next_cursor = _rows(request, signed, filters)
    return render(
        request,
        "queue.html",
        mark=mark,
        csrf=signed.csrf_token,
        filters=filters,
        tickets=found,
        next_cursor=next_cursor,
        review=review,
    )


def _rows(request: Request, signed, filters: QueueFilters):
    with request.app.state.sessions() as session:
        return tickets.list_tickets(
            session,
            signed.caller.tenant_id,
            status=filters.status.value if filters.status else None,
            department=filters.department,
            priority=filters.priority,
            language=filters.language,
            sentiment=filters.sentiment.value if filters.sentiment else None,
            band=filters.band,
            limit=PAGE_SIZE,
            cursor=filters.cursor,
        )


@router.post("/tickets/{ticket_id}/status", status_code=204)
def set_status(
    ticket_id: IdPath,
    request: Request,
    signed: Writer,
    status: Annotated[TicketStatus, Form()],
):
    """Resolve (or close, or reopen as done) from the queue, as the `r` shortcut does; other
    statuses are the worker's (422)."""
    with request.app.state.sessions() as session:
        ticket = tickets.get_ticket(session, signed.caller.tenant_id, ticket_id)
        tickets.apply_update(session, ticket, TicketUpdate(status=status), signed.caller.id)
    return Response(status_code=204)


@router.get("/events")
async def events(
    request: Request,
    signed: Reader,
    since: Annotated[str, Query(max_length=64, description="The mark the page was drawn at")] = "",
):
    """`ready` once connected, then `changed` whenever any of the tenant's tickets is added or
    changes after the mark the page was drawn at (`since`); the page then fetches its rows
    again. Each stream ends after `web_events_stream_s` and the browser reconnects, sending
    the last mark it saw (Last-Event-ID): nothing in between is missed."""
    state = request.app.state
    if state.web_event_streams >= MAX_EVENT_STREAMS:
        raise ApiError(503, "too many live queues open; retry shortly", code="busy")
    seen = request.headers.get("last-event-id", "")[:64] or since
    return StreamingResponse(
        _changes(request, signed.caller.tenant_id, seen),
        media_type="text/event-stream",
        headers={**SECURITY_HEADERS, "X-Accel-Buffering": "no"},
    )


async def _changes(request: Request, tenant_id: int, seen: str):
    settings = request.app.state.settings
    end = time.monotonic() + settings.web_events_stream_s
    quiet_since = time.monotonic()
    state = request.app.state
    state.web_event_streams += 1
    try:
        yield "retry: 1000\nevent: ready\ndata: {}\n\n"
        while time.monotonic() < end and not await request.is_disconnected():
            mark = await run_in_threadpool(changes_mark, request, tenant_id)
            if mark != seen:
                yield f"event: changed\nid: {mark}\ndata: {json.dumps({'mark': mark})}\n\n"
                seen, quiet_since = mark, time.monotonic()
            elif time.monotonic() - quiet_since > KEEP_ALIVE_S:
                yield ": keep-alive\n\n"
                quiet_since = time.monotonic()
            await asyncio.sleep(settings.web_events_poll_s)
    finally:
        state.web_event_streams -= 1


def changes_mark(request: Request, tenant_id: int) -> str:
    """Changes whenever a ticket of the tenant is added or updated: the latest `updated_at`,
    read from the (tenant_id, updated_at) index. Pages carry the one they were drawn at."""
    with request.app.state.sessions() as session:
        latest = session.scalar(
            select(func.max(Ticket.updated_at)).where(Ticket.tenant_id == tenant_id)
        )
    return f"{latest.timestamp() if latest else 0:.6f}"
