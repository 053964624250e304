from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from orchestrator.schemas.tickets import EMAIL_PATTERN


class WebhookTicket(BaseModel):
    """A CRM's ticket event. Sign the raw body: `X-Signature: sha256=<hex HMAC-SHA256>`."""

    model_config = ConfigDict(extra="forbid")

    event_id: str = Field(min_length=1, max_length=200, description="The CRM's id of this event")
    timestamp: int = Field(description="Unix seconds when the CRM signed the event")
    subject: str = Field(min_length=1, max_length=500)
    body: str = Field(min_length=1, max_length=20_000)
    customer_email: str | None = Field(default=None, max_length=320, pattern=EMAIL_PATTERN)
    external_id: str | None = Field(
        default=None, max_length=200, description="The CRM's ticket id; a repeat returns the ticket"
    )
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("event_id", "subject", "body", "customer_email", "external_id")
    @classmethod
    def _no_nul(cls, value: str | None) -> str | None:
        if value is not None and "\x00" in value:  # PostgreSQL's text type cannot hold NUL
            raise ValueError("must not contain NUL (\\u0000) characters")
        return value
