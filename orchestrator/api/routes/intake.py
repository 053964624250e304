"""Intake channels: raw e-mail and signed CRM webhooks, both ending as ordinary tickets."""

import json
from typing import Annotated

from fastapi import APIRouter, FastAPI, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from orchestrator.api.deps import require
from orchestrator.api.keycache import Caller
from orchestrator.api.params import TenantIdHeader
from orchestrator.api.routes.tickets import respond_stored
from orchestrator.db.models import Tenant
from orchestrator.errors import ApiError, unavailable
from orchestrator.schemas.intake import WebhookTicket
from orchestrator.schemas.tickets import Channel, TicketAccepted, TicketCreate, TicketPublic
from orchestrator.services import tickets, webhooks
from orchestrator.services.email_intake import EmailLimits, MalformedEmail, ParsedEmail, precheck
from orchestrator.services.email_parsers import EmailParsers, ParsersUnavailable

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
    """A raw RFC 822 message; its Message-ID makes a redelivery return the same ticket.

    Any message with a sender address becomes a ticket; parts that are not its text are listed
    as `attachments`. Over a parsing limit: 422 `email_too_complex`; no sender: 422
    `malformed_email`.
    """
    raw = await request.body()
    parsers = _email_parsers(request.app)
    try:
        precheck(raw, parsers.limits)  # linear scans; the parse itself runs in another process
        parsed = await parsers.parse(raw)
    except MalformedEmail as error:
        raise ApiError(422, f"e-mail refused: {error}", param="body", code=error.code) from None
    except ParsersUnavailable:
        raise unavailable("the e-mail parser is not available; send the message again") from None
    data = TicketCreate(
        subject=parsed.subject,
        body=parsed.body,
        channel=Channel.email,
        customer_email=parsed.sender,
        external_id=parsed.message_id[:200] if parsed.message_id else None,
    )
    stored = await run_in_threadpool(_store_email, request, key, data, parsed, raw)
    return await respond_stored(request, stored, wait, None)


def _email_parsers(app: FastAPI) -> EmailParsers:
    """The app's parser processes, started with the first message (no await: no race)."""
    parsers = getattr(app.state, "email_parsers", None)
    if parsers is None:
        settings = app.state.settings
        limits = EmailLimits(
            max_depth=settings.email_max_depth,
            max_parts=settings.email_max_parts,
            max_header_bytes=settings.email_max_header_bytes,
            max_headers=settings.email_max_headers,
            max_encoded_words=settings.email_max_encoded_words,
        )
        parsers = EmailParsers(limits, settings.email_parsers, settings.email_parse_timeout_s)
        app.state.email_parsers = parsers
    return parsers


def _store_email(
    request: Request, key: Caller, data: TicketCreate, parsed: ParsedEmail, raw: bytes
) -> tickets.Stored:
    attachments = [attachment.as_dict() for attachment in parsed.attachments]
    with request.app.state.sessions() as session:
        return tickets.create_ticket(
            session,
            key.tenant_id,
            data,
            attachments=attachments,
            raw_message=raw,
            environment=key.environment,
            headers=parsed.headers,
        )


@router.post(
    "/webhook",
    status_code=202,
    response_model=TicketAccepted,
    responses={
        200: {"model": TicketAccepted, "description": "A repeat: the ticket it already made"},
        401: {"description": "Bad or stale signature"},
        503: {"description": "Not stored; send the same delivery again"},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": WebhookTicket.model_json_schema()}},
        }
    },
)
async def intake_webhook(
    request: Request,
    x_tenant_id: TenantIdHeader,
    x_signature: Annotated[str | None, Header(description="sha256=<hex HMAC of the body>")] = None,
):
    """A CRM event signed with the tenant's webhook secret; no API key needed.

    A repeat (the same signed body again, or the same `external_id`/`event_id`) answers 200 with
    the ticket's id and status; a delivery answered 503 stored nothing and may be sent again.
    """
    raw = await request.body()
    settings = request.app.state.settings

    def check_and_store() -> tickets.Stored:
        with request.app.state.sessions() as session:
            tenant = session.get(Tenant, x_tenant_id)
            try:
                signature = webhooks.verify(tenant, x_signature, raw)
                event = _parse_event(raw, settings.webhook_max_json_depth)
                webhooks.check_fresh(event.timestamp, settings.webhook_tolerance_s)
                webhooks.prune(session, settings.webhook_tolerance_s)
                return webhooks.accept(session, tenant.id, signature, _ticket(event))
            except webhooks.BadSignature as error:
                raise ApiError(
                    401, str(error), type="authentication_error", code="bad_signature"
                ) from None
            except SQLAlchemyError:
                session.rollback()
                raise unavailable("the delivery could not be stored; send it again") from None

    stored = await run_in_threadpool(check_and_store)
    if stored.created:
        return await respond_stored(request, stored, False, None)
    # The caller proved only that it holds a signed body, not an API key: no ticket contents.
    repeat = TicketAccepted(id=stored.ticket.id, status=stored.ticket.status)
    return JSONResponse(repeat.model_dump(mode="json"), status_code=200)


def _ticket(event: WebhookTicket) -> TicketCreate:
    return TicketCreate(
        subject=event.subject,
        body=event.body,
        channel=Channel.webhook,
        customer_email=event.customer_email,
        external_id=event.external_id or event.event_id,
        metadata=event.metadata,
    )


def _parse_event(raw: bytes, max_depth: int) -> WebhookTicket:
    try:
        value = webhooks.load_json(raw, max_depth)
    except json.JSONDecodeError as error:
        raise ApiError(422, f"body is not JSON: {error.msg}", param="body") from None
    except UnicodeDecodeError:
        raise ApiError(422, "body is not UTF-8 JSON", param="body") from None
    except webhooks.TooDeep as error:
        raise ApiError(422, f"body: {error}", param="body", code="json_too_deep") from None
    try:
        return WebhookTicket.model_validate(value)
    except ValidationError as error:
        first = error.errors()[0]
        param = ".".join(str(p) for p in first["loc"])
        raise ApiError(422, f"{param or 'body'}: {first['msg']}", param=param or None) from None
