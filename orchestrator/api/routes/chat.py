"""OpenAI-compatible chat: /v1/chat/completions (plain or SSE) and /v1/models, with history."""

import time
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import select

from orchestrator.api.deps import SessionDep, require
from orchestrator.api.keycache import Caller
from orchestrator.db.models import ChatExchange
from orchestrator.schemas.chat import (
    ChatCompletion,
    ChatExchangePublic,
    ChatHistoryPage,
    ChatRequest,
    ModelCard,
    ModelList,
)
from orchestrator.services.chat import ChatService
from orchestrator.services.pagination import page

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
    responses={
        200: {"content": {"text/event-stream": {}}},
        400: {"description": "The prompt plus max_tokens exceeds the context"},
        503: {"description": "LLM down"},
    },
)
async def chat_completions(data: ChatRequest, request: Request, key: ChatKey):
    """Chat with the LLM; `stream: true` answers with OpenAI's SSE chunks and a usage chunk."""
    chat: ChatService = request.app.state.chat
    if data.stream:
        events = await chat.stream(key, data)  # a dead LLM still gets a proper 503
        return StreamingResponse(events, media_type="text/event-stream")
    return await chat.complete(key, data)


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
