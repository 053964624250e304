import logging
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from orchestrator.environments import DEFAULT_ENVIRONMENT, Environment
from orchestrator.schemas.common import Metadata, metadata_problem
from orchestrator.schemas.triage import Triage

log = logging.getLogger(__name__)

EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"


class Channel(StrEnum):
    web = "web"
    email = "email"
    webhook = "webhook"
    api = "api"


class TicketStatus(StrEnum):
    queued = "queued"  # stored, waiting for the worker
    processing = "processing"
    done = "done"  # triaged and drafted
    failed = "failed"  # the worker gave up; `error` says why
    resolved = "resolved"  # set by an agent
    closed = "closed"  # set by an agent
    filtered = "filtered"  # an auto-reply or bulk mail: settled at intake, never drafted


class Sentiment(StrEnum):
    very_negative = "very_negative"
    negative = "negative"
    neutral = "neutral"
    positive = "positive"
    very_positive = "very_positive"


AGENT_STATUSES = (TicketStatus.resolved, TicketStatus.closed, TicketStatus.done)


class TicketCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subject: str = Field(min_length=1, max_length=500)
    body: str = Field(min_length=1, max_length=20_000)
    channel: Channel = Channel.api
    customer_email: str | None = Field(default=None, max_length=320, pattern=EMAIL_PATTERN)
    external_id: str | None = Field(default=None, min_length=1, max_length=200)
    metadata: Metadata = Field(default_factory=dict)

    @field_validator("subject", "body")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value


class DraftPublic(BaseModel):
    text: str
    source: str = Field(
        description='The model that wrote it ("llm", or "llm_fallback" after a failover), '
        'or "fallback": the canned draft, when no LLM could answer'
    )


class ReplyPublic(BaseModel):
    text: str
    sent_at: datetime = Field(description="When an agent sent it from the workspace (/app)")


class HistoryEntryPublic(BaseModel):
    at: datetime
    what: str = Field(description='What happened, e.g. "Intent corrected from a to b"')
    key_id: int | None = Field(description="The key that acted; null: the platform itself")


class TicketHistory(BaseModel):
    data: list[HistoryEntryPublic] = Field(description="Oldest first")


class TicketAccepted(BaseModel):
    id: int
    status: TicketStatus


class AttachmentPublic(BaseModel):
    """A part of an e-mail that is not its text: listed, not stored apart (the raw mail is kept)."""

    filename: str | None
    content_type: str
    size: int = Field(description="Decoded bytes")


class TicketPublic(BaseModel):
    id: int
    status: TicketStatus
    channel: Channel
    subject: str
    body: str
    customer_email: str | None
    external_id: str | None
    metadata: dict[str, Any]
    triage: Triage | None
    draft: DraftPublic | None
    error: str | None
    created_at: datetime
    updated_at: datetime
    processed_at: datetime | None
    attachments: list[AttachmentPublic] = Field(
        default_factory=list, description="E-mail parts that are not the text"
    )
    environment: Environment = Field(
        default=DEFAULT_ENVIRONMENT,
        description="The submitting key's; its drafts use that environment's configuration",
    )
    language: str | None = Field(
        default=None, description="ISO 639-1, read from the text; null when unsure"
    )
    sentiment: Sentiment | None = Field(default=None, description="Read from the text")
    auto_reply: bool = Field(
        default=False, description="An out-of-office reply or a delivery report: not drafted"
    )
    spam: bool = Field(default=False, description="Bulk mail or a mailing list: not drafted")
    automation_reasons: list[str] = Field(
        default_factory=list, description="What flagged it as an auto-reply or bulk mail"
    )
    reply: ReplyPublic | None = Field(
        default=None, description="The reply an agent sent, which resolved the ticket"
    )

    @field_validator("metadata", mode="before")
    @classmethod
    def _withhold_unreadable(cls, value: Any, info: ValidationInfo) -> Any:
        """Rows stored before the metadata limits may hold JSON too deep to serialise; {} in
        its place (and a log line) keeps that ticket, and every page listing it, readable."""
        problem = metadata_problem(value) if isinstance(value, dict) else None
        if problem is None:
            return value
        log.warning("ticket %s: stored metadata withheld: %s", info.data.get("id"), problem)
        return {}


class TicketPage(BaseModel):
    data: list[TicketPublic]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end"
    )


class TicketUpdate(BaseModel):
    """An agent's corrections; triage fields changed here are kept as labelled feedback."""

    model_config = ConfigDict(extra="forbid")

    intent: str | None = None
    department: str | None = None
    priority: str | None = None
    status: TicketStatus | None = None


class FeedbackItem(BaseModel):
    """A labelled example: the ticket's text and the value an agent corrected a field to,
    with its provenance."""

    id: int
    ticket_id: int
    key_id: int = Field(description="The API key that made the correction")
    text: str
    field: str
    old_value: str | None = Field(
        description="The value before this correction: the model's prediction, unless the "
        "field had been corrected before"
    )
    new_value: str
    model_version: str | None = Field(
        description="The version of `ticket_triage` that predicted; null if not recorded"
    )
    model_confidence: float | None = Field(
        description="The model's confidence in its predicted intent"
    )
    created_at: datetime


class FeedbackPage(BaseModel):
    data: list[FeedbackItem]
    next_cursor: str | None
