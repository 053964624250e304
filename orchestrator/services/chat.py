"""Chat completions: generation through the LLM, SSE chunks, history and metrics.

Requests name the public model (settings.llm_model, GET /v1/models); the answer's `model`
(every SSE chunk's, and the history's) is the Triton model that wrote it: the primary, or the
fallback when the primary failed or its breaker is open (services/failover.py).

The environment of the calling key picks the chat configuration (services/configs.py): its
system prompt, temperature, max_tokens and stop words fill in what a request leaves out. The
history keeps the messages as the caller sent them.

Errors are domain errors (orchestrator.errors maps them to HTTP): an unknown model, a prompt
that does not fit the context (the caller's error: 400 context_length_exceeded, which OpenAI
clients do not retry), or an LLM that cannot answer now (503 with Retry-After).
"""

import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from typing import Protocol

import anyio

from orchestrator.api.keycache import Caller
from orchestrator.db.models import ChatExchange
from orchestrator.errors import ContextTooLong, DependencyUnavailable, ModelNotFound
from orchestrator.metrics import Metrics
from orchestrator.schemas.chat import (
    AssistantMessage,
    ChatCompletion,
    ChatMessage,
    ChatRequest,
    Choice,
    Usage,
)
from orchestrator.schemas.configs import ChatConfig
from orchestrator.services.configs import ConfigStore
from orchestrator.services.failover import Answer, FailoverLLM
from orchestrator.services.generation import GenerationTimer
from orchestrator.settings import OrchestratorSettings
from orchestrator.triton.llm_client import (
    Generation,
    LLMRejected,
    LLMTimeout,
    LLMUnavailable,
)


class Spent(Protocol):
    def record(self, tokens: int) -> None: ...


# A per-tenant concurrency / token budget (orchestrator.api.quotas): entered before the
# generation starts and left when it ends (for a stream: when the stream ends or the client
# goes away); it may refuse with a 429. Called with the caller and the max_tokens asked for;
# it yields where to record the tokens really generated, so the rest is given back.
Quota = Callable[[Caller, int], AbstractAsyncContextManager[Spent]]


class _Unmetered:
    def record(self, tokens: int) -> None:
        pass


@contextlib.asynccontextmanager
async def no_quota(_caller: Caller, _max_tokens: int):
    yield _Unmetered()


class ChatService:
    def __init__(
        self,
        llm: FailoverLLM,
        sessions,
        metrics: Metrics,
        settings: OrchestratorSettings,
        quota: Quota = no_quota,
        configs: ConfigStore | None = None,  # None: the defaults for every environment
    ):
        self.llm, self.sessions, self.metrics, self.settings = llm, sessions, metrics, settings
        self.quota = quota  # the lead wires the per-tenant budget here
        self.configs = configs

    async def complete(self, caller: Caller, data: ChatRequest) -> ChatCompletion:
        self.check_model(data)
        asked = await self.configured(caller, data)
        async with self.quota(caller, self._max_tokens(asked)) as spent:
            exchange = _Exchange(self, caller, data, spent)
            items = self._generate(asked)
            first = await _first_item(items)
            exchange.model = items.model
            text, generation = await _collect(first, items, exchange.timer)
            await exchange.save(text, generation)
        return ChatCompletion(
            id=f"chatcmpl-{uuid.uuid4().hex}",
            created=int(time.time()),
            model=items.model,
            choices=[
                Choice(
                    message=AssistantMessage(content=text), finish_reason=generation.finish_reason
                )
            ],
            usage=_usage(generation),
        )

    async def stream(self, caller: Caller, data: ChatRequest) -> AsyncIterator[str]:
        """The SSE events; errors before the first token raise here, as a real HTTP status."""
        self.check_model(data)
        asked = await self.configured(caller, data)
        resources = AsyncExitStack()
        spent = await resources.enter_async_context(self.quota(caller, self._max_tokens(asked)))
        try:
            exchange = _Exchange(self, caller, data, spent)
            items = self._generate(asked)
            first = await _first_item(items)
            exchange.model = items.model
        except BaseException:
            await resources.aclose()
            raise
        return _events(f"chatcmpl-{uuid.uuid4().hex}", data, first, items, exchange, resources)

    def check_model(self, data: ChatRequest) -> None:
        if data.model != self.settings.llm_model:
            raise ModelNotFound(f"no model {data.model!r}; see GET /v1/models", param="model")

    async def configured(self, caller: Caller, data: ChatRequest) -> ChatRequest:
        """The request as the LLM gets it: the caller's environment's defaults filled in."""
        if self.configs is None:
            return with_config(data, ChatConfig())
        return with_config(data, await self.configs.chat(caller.environment))

    def _max_tokens(self, data: ChatRequest) -> int:
        asked = data.max_completion_tokens or data.max_tokens
        return asked or self.settings.chat_default_max_tokens

    def _generate(self, data: ChatRequest) -> Answer:
        return self.llm.stream(
            [m.model_dump(exclude_none=True) for m in data.messages],
            max_tokens=self._max_tokens(data),
            temperature=data.temperature,
            top_p=data.top_p,
            seed=data.seed,
            stop=data.stop,
            frequency_penalty=data.frequency_penalty,
            presence_penalty=data.presence_penalty,
            ignore_eos=data.ignore_eos,
            timeout_s=self.settings.chat_timeout_s,
        )


def with_config(data: ChatRequest, config: ChatConfig) -> ChatRequest:
    """`data` with the configuration's values where the request sets none (a system message,
    temperature, max_tokens or stop words of its own win)."""
    update: dict = {}
    if config.system_prompt and not any(m.role == "system" for m in data.messages):
        system = ChatMessage(role="system", content=config.system_prompt)
        update["messages"] = [system, *data.messages]
    if "temperature" not in data.model_fields_set:
        update["temperature"] = config.temperature
    if data.max_tokens is None and data.max_completion_tokens is None and config.max_tokens:
        update["max_tokens"] = config.max_tokens
    if data.stop is None and config.stop:
        update["stop"] = list(config.stop)
    return data.model_copy(update=update)


async def _first_item(items: AsyncIterator) -> str | Generation:
    try:
        return await anext(items)
    except LLMRejected as error:
        raise ContextTooLong(
            f"{error}; shorten the messages or lower max_tokens",
            param="messages",
            code=error.code,
        ) from None
    except LLMTimeout:
        raise DependencyUnavailable("the LLM did not answer in time; retry shortly") from None
    except LLMUnavailable:
        raise DependencyUnavailable("the LLM is unavailable; retry shortly") from None


async def _collect(first, items: AsyncIterator, timer: GenerationTimer) -> tuple[str, Generation]:
    item = first
    while not isinstance(item, Generation):
        timer.token()
        try:
            item = await anext(items)
        except LLMUnavailable:
            raise DependencyUnavailable("the LLM failed mid-answer; retry shortly") from None
    return item.text, item


class _Exchange:
    """Stores one exchange once, off the event loop, and records its TTFT and TPOT."""

    def __init__(self, service: ChatService, caller: Caller, data: ChatRequest, spent: Spent):
        self.service, self.caller, self.spent = service, caller, spent
        self.model = data.model  # then the model that writes the answer
        self.messages = [m.model_dump(exclude_none=True) for m in data.messages]
        self.timer = GenerationTimer()
        self.saved = False

    async def save(self, reply: str, generation: Generation | None, reason: str | None = None):
        if self.saved:
            return
        self.saved = True
        # Unfinished: about one token per streamed piece.
        self.spent.record(generation.completion_tokens if generation else self.timer.tokens)
        if generation is not None:
            self.timer.record(self.service.metrics, "chat", generation)
        row = ChatExchange(
            tenant_id=self.caller.tenant_id,
            key_id=self.caller.id,
            model=self.model,
            messages=self.messages,
            reply=reply,
            finish_reason=reason or (generation.finish_reason if generation else "error"),
            prompt_tokens=generation.prompt_tokens if generation else 0,
            completion_tokens=generation.completion_tokens if generation else 0,
        )
        await anyio.to_thread.run_sync(self._store, row)

    def _store(self, row: ChatExchange) -> None:
        with self.service.sessions() as session:
            session.add(row)
            session.commit()


async def _events(
    completion_id: str,
    data: ChatRequest,
    first,
    items: Answer,
    exchange: _Exchange,
    resources: AsyncExitStack,
) -> AsyncIterator[str]:
    created, parts = int(time.time()), []

    def event(choices: list, **extra) -> str:
        body = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": items.model,
            "choices": choices,
            **extra,
        }
        return f"data: {json.dumps(body)}\n\n"

    def chunk(delta: dict, finish_reason: str | None = None) -> str:
        return event([{"index": 0, "delta": delta, "finish_reason": finish_reason}])

    item, failure = first, None
    try:
        yield chunk({"role": "assistant", "content": ""})
        try:
            while not isinstance(item, Generation):
                exchange.timer.token()
                parts.append(item)
                yield chunk({"content": item})
                item = await anext(items)
        except LLMUnavailable as error:
            failure = error
        if failure is None:
            await exchange.save(item.text, item)
            yield chunk({}, item.finish_reason)
            if data.include_usage:
                yield event([], usage=_usage(item).model_dump())
        else:
            await exchange.save("".join(parts), None, reason="error")
            message = {"message": f"the LLM failed mid-answer: {failure}", "type": "server_error"}
            yield f"data: {json.dumps({'error': message})}\n\n"
        yield "data: [DONE]\n\n"
    finally:
        # A client that went away cancels this generator's scope, and every await in it
        # would be cancelled again: shield the clean-up so the stream is closed (Triton
        # cancels the request), the exchange is stored and the quota is given back.
        with anyio.CancelScope(shield=True):
            if not isinstance(item, Generation):
                await items.aclose()
            await exchange.save("".join(parts), None, reason="cancelled")
            await resources.aclose()


def _usage(generation: Generation) -> Usage:
    return Usage(
        prompt_tokens=generation.prompt_tokens,
        completion_tokens=generation.completion_tokens,
        total_tokens=generation.prompt_tokens + generation.completion_tokens,
    )
