"""OpenAI-compatible chat: /v1/chat/completions (plain or SSE) and /v1/models, with history."""

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from sqlalchemy import select

from orchestrator.api.deps import SessionDep, require
from orchestrator.api.keycache import Caller
from orchestrator.db.models import ChatExchange
from orchestrator.errors import ApiError, unavailable
from orchestrator.schemas.chat import (
    AssistantMessage,
    ChatCompletion,
    ChatExchangePublic,
    ChatHistoryPage,
    ChatRequest,
    Choice,
    ModelCard,
    ModelList,
    Usage,
)
from orchestrator.services.generation import GenerationTimer
from orchestrator.services.pagination import page
from orchestrator.triton.llm_client import Generation, LLMTimeout, LLMUnavailable

router = APIRouter(prefix="/v1", tags=["chat"])
ChatKey = Annotated[Caller, require("chat")]
STARTED = int(time.time())


@router.get("/models", response_model=ModelList)
def list_models(request: Request, _key: ChatKey) -> ModelList:
    """The models /v1/chat/completions accepts."""
    return ModelList(data=[ModelCard(id=request.app.state.settings.llm_model, created=STARTED)])


@router.post(
    "/chat/completions",
    response_model=ChatCompletion,
    responses={200: {"content": {"text/event-stream": {}}}, 503: {"description": "LLM down"}},
)
async def chat_completions(data: ChatRequest, request: Request, key: ChatKey):
    """Chat with the LLM; `stream: true` answers with OpenAI's SSE chunks and a usage chunk."""
    settings = request.app.state.settings
    if data.model != settings.llm_model:
        raise ApiError(
            404,
            f"no model {data.model!r}; see GET /v1/models",
            param="model",
            code="model_not_found",
        )
    messages = [m.model_dump(exclude_none=True) for m in data.messages]
    timer = GenerationTimer()
    items = request.app.state.llm.stream(
        messages,
        max_tokens=data.max_completion_tokens
        or data.max_tokens
        or settings.chat_default_max_tokens,
        temperature=data.temperature,
        top_p=data.top_p,
        seed=data.seed,
        stop=data.stop,
        frequency_penalty=data.frequency_penalty,
        presence_penalty=data.presence_penalty,
        timeout_s=settings.chat_timeout_s,
    )
    first = await _first_item(items)  # a dead LLM still gets a proper 503, not a broken stream
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    exchange = _Exchange(request, key, data.model, messages, timer)
    if data.stream:
        chunks = _chunks(completion_id, data, first, items, exchange)
        return StreamingResponse(chunks, media_type="text/event-stream")
    text, generation = await _collect(first, items, timer)
    await exchange.save(text, generation)
    return ChatCompletion(
        id=completion_id,
        created=int(time.time()),
        model=data.model,
        choices=[
            Choice(message=AssistantMessage(content=text), finish_reason=generation.finish_reason)
        ],
        usage=_usage(generation),
    )


async def _first_item(items: AsyncIterator) -> str | Generation:
    try:
        return await anext(items)
    except LLMTimeout:
        raise unavailable("the LLM did not answer in time; retry shortly") from None
    except LLMUnavailable:
        raise unavailable("the LLM is unavailable; retry shortly") from None


async def _collect(first, items: AsyncIterator, timer: GenerationTimer) -> tuple[str, Generation]:
    item = first
    while not isinstance(item, Generation):
        timer.token()
        try:
            item = await anext(items)
        except LLMUnavailable:
            raise unavailable("the LLM failed mid-answer; retry shortly") from None
    return item.text, item


class _Exchange:
    """Stores one exchange once, and records its TTFT and TPOT."""

    def __init__(self, request: Request, key: Caller, model: str, messages: list, timer):
        self.request, self.key, self.model, self.messages = request, key, model, messages
        self.timer = timer
        self.saved = False

    async def save(self, reply: str, generation: Generation | None) -> None:
        await run_in_threadpool(self.save_now, reply, generation)

    def save_now(self, reply: str, generation: Generation | None, reason: str | None = None):
        if self.saved:
            return
        self.saved = True
        if generation is not None:
            self.timer.record(self.request.app.state.metrics, "chat", generation)
        with self.request.app.state.sessions() as session:
            session.add(
                ChatExchange(
                    tenant_id=self.key.tenant_id,
                    key_id=self.key.id,
                    model=self.model,
                    messages=self.messages,
                    reply=reply,
                    finish_reason=reason or (generation.finish_reason if generation else "error"),
                    prompt_tokens=generation.prompt_tokens if generation else 0,
                    completion_tokens=generation.completion_tokens if generation else 0,
                )
            )
            session.commit()


async def _chunks(completion_id: str, data: ChatRequest, first, items, exchange: _Exchange):
    created, parts = int(time.time()), []

    def event(choices: list, **extra) -> str:
        body = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": data.model,
            "choices": choices,
            **extra,
        }
        return f"data: {json.dumps(body)}\n\n"

    def chunk(delta: dict, finish_reason: str | None = None) -> str:
        return event([{"index": 0, "delta": delta, "finish_reason": finish_reason}])

    yield chunk({"role": "assistant", "content": ""})
    item = first
    try:
        while not isinstance(item, Generation):
            exchange.timer.token()
            parts.append(item)
            yield chunk({"content": item})
            item = await anext(items)
    except LLMUnavailable as error:
        exchange.save_now("".join(parts), None, reason="error")
        failure = {
            "error": {"message": f"the LLM failed mid-answer: {error}", "type": "server_error"}
        }
        yield f"data: {json.dumps(failure)}\n\n"
        return
    finally:
        if not exchange.saved and not isinstance(item, Generation):  # the client went away
            await items.aclose()  # closes the gRPC stream: Triton cancels the request
            exchange.save_now("".join(parts), None, reason="cancelled")
    await exchange.save(item.text, item)
    yield chunk({}, item.finish_reason)
    if data.include_usage:
        yield event([], usage=_usage(item).model_dump())
    yield "data: [DONE]\n\n"


def _usage(generation: Generation) -> Usage:
    return Usage(
        prompt_tokens=generation.prompt_tokens,
        completion_tokens=generation.completion_tokens,
        total_tokens=generation.prompt_tokens + generation.completion_tokens,
    )


@router.get("/chat/history", response_model=ChatHistoryPage)
def chat_history(
    session: SessionDep,
    key: ChatKey,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> ChatHistoryPage:
    """This tenant's chat exchanges, newest first."""
    query = select(ChatExchange).where(ChatExchange.tenant_id == key.tenant_id)
    rows, next_cursor = page(session, query, ChatExchange.id, limit, cursor)
    return ChatHistoryPage(
        data=[
            ChatExchangePublic(
                id=r.id,
                model=r.model,
                messages=r.messages,
                reply=r.reply,
                finish_reason=r.finish_reason,
                prompt_tokens=r.prompt_tokens,
                completion_tokens=r.completion_tokens,
                created_at=r.created_at.isoformat(),
            )
            for r in rows
        ],
        next_cursor=next_cursor,
    )
