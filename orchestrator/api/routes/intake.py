"""Intake channels: raw e-mail and signed CRM webhooks, both ending as ordinary tickets."""

import json
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError

from orchestrator.api.deps import require
from orchestrator.api.keycache import Caller
from orchestrator.api.routes.tickets import respond_stored
from orchestrator.db.models import Tenant
from orchestrator.errors import ApiError
from orchestrator.schemas.intake import WebhookTicket
from orchestrator.schemas.tickets import Channel, TicketAccepted, TicketCreate, TicketPublic
from orchestrator.services import tickets, webhooks
from orchestrator.services.email_intake import MalformedEmail, parse_email

router = APIRouter(prefix="/v1/intake", tags=["intake"])
RESPONSES = {200: {"model": TicketPublic, "description": "A repeat of an earlier message"}}


@router.post(
    "/email",
    status_code=202,
    response_model=TicketAccepted,
    responses=RESPONSES,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"message/rfc822": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def intake_email(
    request: Request,
    key: Annotated[Caller, require("tickets:write")],
    wait: Annotated[bool, Query()] = False,
):
    """A raw RFC 822 message; its Message-ID makes a redelivery return the same ticket."""
    try:
        parsed = parse_email(await request.body())
    except MalformedEmail as error:
        raise ApiError(
            422, f"malformed e-mail: {error}", param="body", code="malformed_email"
        ) from None
    data = TicketCreate(
        subject=parsed.subject,
        body=parsed.body,
        channel=Channel.email,
        customer_email=parsed.sender,
        external_id=parsed.message_id[:200] if parsed.message_id else None,
    )
    stored = await run_in_threadpool(_store, request, key.tenant_id, data)
    return await respond_stored(request, stored, wait, None)


@router.post(
    "/webhook",
    status_code=202,
    response_model=TicketAccepted,
    responses={**RESPONSES, 401: {"description": "Bad, stale or replayed signature"}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": WebhookTicket.model_json_schema()}},
        }
    },
)
async def intake_webhook(
    request: Request,
    x_tenant_id: Annotated[int, Header(description="The tenant whose secret signed the body")],
    x_signature: Annotated[str | None, Header(description="sha256=<hex HMAC of the body>")] = None,
):
    """A CRM event signed with the tenant's webhook secret; no API key needed."""
    raw = await request.body()
    settings = request.app.state.settings

    def check_and_parse() -> tuple[WebhookTicket, tickets.Stored]:
        with request.app.state.sessions() as session:
            tenant = session.get(Tenant, x_tenant_id)
            try:
                signature = webhooks.verify(tenant, x_signature, raw)
                event = _parse_event(raw)
                webhooks.check_fresh(event.timestamp, settings.webhook_tolerance_s)
                webhooks.remember(session, tenant.id, signature)
            except webhooks.BadSignature as error:
                raise ApiError(
                    401, str(error), type="authentication_error", code="bad_signature"
                ) from None
            data = TicketCreate(
                subject=event.subject,
                body=event.body,
                channel=Channel.webhook,
                customer_email=event.customer_email,
                external_id=event.external_id or event.event_id,
                metadata=event.metadata,
            )
            return event, tickets.create_ticket(session, tenant.id, data)

    _, stored = await run_in_threadpool(check_and_parse)
    return await respond_stored(request, stored, False, None)


def _parse_event(raw: bytes) -> WebhookTicket:
    try:
        return WebhookTicket.model_validate(json.loads(raw))
    except json.JSONDecodeError as error:
        raise ApiError(422, f"body is not JSON: {error.msg}", param="body") from None
    except ValidationError as error:
        first = error.errors()[0]
        param = ".".join(str(p) for p in first["loc"])
        raise ApiError(422, f"{param or 'body'}: {first['msg']}", param=param or None) from None


def _store(request: Request, tenant_id: int, data: TicketCreate) -> tickets.Stored:
    with request.app.state.sessions() as session:
        return tickets.create_ticket(session, tenant_id, data)
