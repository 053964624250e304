"""OpenAI's chat-completions shapes: the subset this server honours, and its answers."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_TOKENS_CEILING = 4096  # the most a request (or the chat configuration) may ask for
DEFAULT_TEMPERATURE = 0.7  # when neither the request nor the chat configuration sets one
MAX_STOP_WORDS = 4


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "user", "assistant"]
    content: str = Field(max_length=32_000)
    name: str | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    include_usage: bool = True


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str
    messages: list[ChatMessage] = Field(min_length=1, max_length=200)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS_CEILING)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS_CEILING)
    temperature: float = Field(default=DEFAULT_TEMPERATURE, ge=0, le=2)
    top_p: float = Field(default=1.0, gt=0, le=1)
    stop: str | list[str] | None = None
    seed: int | None = Field(default=None, ge=0, lt=2**64)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    n: int = Field(default=1, ge=1, le=1, description="Only 1 is supported")
    user: str | None = Field(default=None, max_length=200)
    # Not OpenAI's: vLLM's extension, sent with the openai client's `extra_body`. Generation
    # goes on past end of sequence to exactly max_tokens, so that a benchmark's every stream
    # does the same work.
    ignore_eos: bool = Field(
        default=False, description="Extension (as vLLM's): generate max_tokens, ignoring EOS"
    )

    @field_validator("stop")
    @classmethod
    def _stop_list(cls, stop):
        stops = [stop] if isinstance(stop, str) else stop
        if stops is not None and (len(stops) > MAX_STOP_WORDS or any(not s for s in stops)):
            raise ValueError(f"up to {MAX_STOP_WORDS} non-empty stop sequences")
        return stops

    @property
    def include_usage(self) -> bool:
        """Streams end with a usage chunk unless `stream_options.include_usage` is false."""
        return self.stream_options is None or self.stream_options.include_usage


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: str


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "support-inference"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ChatExchangePublic(BaseModel):
    id: int
    model: str
    messages: list[dict]
    reply: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    created_at: str


class ChatHistoryPage(BaseModel):
    data: list[ChatExchangePublic]
    next_cursor: str | None
