"""Versioned configurations: one strict model per name, validating a PUT body, and the answers.

A field left out of a PUT takes its default, so a body is always a whole configuration; the
defaults are today's behaviour (the settings and the constants of services/drafts.py), which
is also what an environment without a stored version gets (version 0).
"""

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from orchestrator.environments import Environment
from orchestrator.schemas.chat import DEFAULT_TEMPERATURE, MAX_STOP_WORDS, MAX_TOKENS_CEILING
from orchestrator.schemas.common import MAX_ID
from orchestrator.services.drafts import OPENING_INSTRUCTIONS, OPENING_STOP, RETRY_TEMPERATURE
from orchestrator.settings import DRAFT_MAX_TOKENS_BOUNDS

Temperature = Annotated[float, Field(ge=0, le=2)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ChatConfig(Strict):
    """Defaults for /v1/chat/completions: each applies only where the request sets none."""

    system_prompt: str | None = Field(
        default=None,
        min_length=1,
        max_length=32_000,
        description="Prepended as a system message to requests that carry no system message",
    )
    temperature: Temperature = Field(
        default=DEFAULT_TEMPERATURE, description="For requests that give no temperature"
    )
    max_tokens: int | None = Field(
        default=None,
        ge=1,
        le=MAX_TOKENS_CEILING,
        description="For requests that give no max_tokens; "
        "null: ORCHESTRATOR_CHAT_DEFAULT_MAX_TOKENS",
    )
    stop: list[Annotated[str, StringConstraints(min_length=1, max_length=100)]] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_STOP_WORDS,
        description="Stop sequences for requests that give none",
    )


class DraftsConfig(Strict):
    """The model's sentence of a draft reply (services/drafts.py)."""

    system_prompt: str = Field(
        default=OPENING_INSTRUCTIONS,
        min_length=1,
        max_length=4000,
        description="The instructions before the few-shot examples",
    )
    retry_temperature: Temperature = Field(
        default=RETRY_TEMPERATURE,
        description="The second attempt's, after a sentence failed the checks "
        "(the first is greedy)",
    )
    max_tokens: int | None = Field(
        default=None,
        **DRAFT_MAX_TOKENS_BOUNDS,
        description="The sentence's token budget; null: ORCHESTRATOR_DRAFT_MAX_TOKENS",
    )
    stop: list[Annotated[str, StringConstraints(min_length=1, max_length=20)]] = Field(
        default_factory=lambda: list(OPENING_STOP),
        max_length=8,
        description="Where the sentence ends",
    )


CONFIGS: dict[str, type[Strict]] = {"chat": ChatConfig, "drafts": DraftsConfig}


class ConfigPublic(BaseModel):
    name: str
    environment: Environment
    version: int = Field(description="1, 2, ... per name and environment; 0: the defaults")
    active: bool = Field(description="Whether the environment uses this version now")
    config: dict[str, Any]
    key_id: int | None = Field(description="The key that wrote it; null for the defaults")
    created_at: datetime | None


class ConfigPage(BaseModel):
    data: list[ConfigPublic]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end"
    )


class RollbackRequest(Strict):
    version: int | None = Field(
        default=None,
        ge=0,
        le=MAX_ID,
        description="The version to activate; default: the one numbered just below the active "
        "one; 0: the built-in defaults",
    )
