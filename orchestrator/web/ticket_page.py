"""A ticket's page: the customer's text, the triage with its top intents and signals, the
corrections an agent makes (feedback for the MLOps loop), the draft written again as a
stream, the reply sent, and the history."""

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, StreamingResponse

from orchestrator.api.params import IdPath
from orchestrator.api.routes.tickets import draft_events, triaged_ticket
from orchestrator.errors import ApiError
from orchestrator.schemas.tickets import TicketUpdate
from orchestrator.services import tickets
from orchestrator.services.ticket_history import ticket_history
from orchestrator.web.auth import Reader, Writer
from orchestrator.web.pages import SECURITY_HEADERS, render
from orchestrator.web.queue import changes_mark

router = APIRouter(prefix="/app/tickets", include_in_schema=False)
MAX_REPLY_CHARS = 20_000
Choice = Annotated[str, Form(max_length=100)]


@router.get("/{ticket_id}")
def ticket_page(ticket_id: IdPath, request: Request, signed: Reader, saved: str = ""):
    mark = changes_mark(request, signed.caller.tenant_id)  # before the ticket: none missed
    with request.app.state.sessions() as session:
        ticket = tickets.get_ticket(session, signed.caller.tenant_id, ticket_id)
        history = ticket_history(session, ticket)
        return render(
            request,
            "ticket.html",
            mark=mark,
            csrf=signed.csrf_token,
            ticket=ticket,
            history=history,
            saved=saved[:20],
        )


@router.post("/{ticket_id}/corrections")
def correct(
    ticket_id: IdPath,
    request: Request,
    signed: Writer,
    intent: Choice = "",
    department: Choice = "",
    priority: Choice = "",
):
    """The triage fields an agent changed; each change is a labelled example (/v1/feedback).
    An intent changed alone also moves the department and priority to the intent's own."""
    with request.app.state.sessions() as session:
        ticket = tickets.get_ticket(session, signed.caller.tenant_id, ticket_id)
        changes = {
            field: value
            for field, value in (
                ("intent", intent),
                ("department", department),
                ("priority", priority),
            )
            if value and value != getattr(ticket, field)
        }
        tickets.apply_update(session, ticket, TicketUpdate(**changes), signed.caller.id)
    return RedirectResponse(f"/app/tickets/{ticket_id}?saved=triage", status_code=303)


@router.post("/{ticket_id}/draft")
async def regenerate(ticket_id: IdPath, request: Request, signed: Writer):
    """The draft written again, streamed as server-sent events (`delta`, then `draft`)."""
    ticket = await triaged_ticket(request, signed.caller.tenant_id, ticket_id)
    return StreamingResponse(
        draft_events(request, ticket, signed.caller.id),
        media_type="text/event-stream",
        headers={**SECURITY_HEADERS, "X-Accel-Buffering": "no"},
    )


@router.post("/{ticket_id}/reply")
def send_and_resolve(
    ticket_id: IdPath,
    request: Request,
    signed: Writer,
    reply: Annotated[str, Form(min_length=1, max_length=MAX_REPLY_CHARS)],
):
    text = reply.replace("\r\n", "\n").strip()  # a form sends its lines ended by CRLF
    if not text:
        raise ApiError(422, "the reply is empty", param="reply")
    with request.app.state.sessions() as session:
        ticket = tickets.get_ticket(session, signed.caller.tenant_id, ticket_id)
        tickets.send_reply(session, ticket, text, signed.caller.id)
    return RedirectResponse(f"/app/tickets/{ticket_id}?saved=reply", status_code=303)
