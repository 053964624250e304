"""Rendering: the templates, the headers every page carries, and the queue's filters."""

from pathlib import Path
from typing import Literal

from fastapi import Request
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, ConfigDict, Field, field_validator

from orchestrator.schemas.tickets import Sentiment, TicketStatus
from orchestrator.services.taxonomy import PRIORITIES, default_taxonomy

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")  # autoescapes .html

# Scripts, styles and calls from this origin only; never framed; forms post here only.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def render(request: Request, template: str, status_code: int = 200, **context):
    response = templates.TemplateResponse(
        request, template, {"choices": choices(), **context}, status_code=status_code
    )
    response.headers.update(SECURITY_HEADERS)
    return response


def choices() -> dict[str, list[str]]:
    """What the filters and the correction form offer."""
    taxonomy = default_taxonomy()
    return {
        "status": [s.value for s in TicketStatus],
        "department": sorted(taxonomy.departments),
        "priority": list(PRIORITIES),
        "sentiment": [s.value for s in Sentiment],
        "band": ["high", "medium", "low"],
        "intent": sorted(taxonomy.intents),
    }


class QueueFilters(BaseModel):
    """The queue's filters, as its GET form sends them ("" is "any")."""

    model_config = ConfigDict(extra="ignore")

    status: TicketStatus | None = None
    department: str | None = Field(default=None, max_length=50)
    priority: str | None = Field(default=None, max_length=20)
    language: str | None = Field(default=None, pattern=r"^[a-z]{2,3}$")
    sentiment: Sentiment | None = None
    band: Literal["high", "medium", "low"] | None = None
    cursor: str | None = Field(default=None, max_length=200)

    @field_validator("*", mode="before")
    @classmethod
    def _blank_is_any(cls, value):
        return None if value == "" else value

    def query(self) -> dict[str, str]:
        """The set filters, for the rows' and the next page's links."""
        return {k: str(v) for k, v in self.model_dump(mode="json", exclude_none=True).items()}
