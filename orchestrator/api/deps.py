"""Dependencies shared by the routers: database sessions and the calling key."""

import secrets
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from orchestrator.db.models import ApiKey
from orchestrator.errors import forbidden, rate_limited, unauthorized
from orchestrator.ratelimit import retry_after_header
from orchestrator.security import digest


def get_session(request: Request) -> Iterator[Session]:
    with request.app.state.sessions() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def _presented_key(request: Request) -> str:
    key = request.headers.get("x-api-key")
    if key is None:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        key = value.strip() if scheme.lower() == "bearer" else ""
    return key


def current_key(request: Request, session: SessionDep) -> ApiKey:
    """The key's record; a missing, unknown or revoked key gets the same 401."""
    wanted = digest(_presented_key(request))
    key = session.scalar(select(ApiKey).where(ApiKey.digest == wanted))
    if key is None or key.revoked_at is not None or not secrets.compare_digest(key.digest, wanted):
        raise unauthorized()
    return key


CurrentKey = Annotated[ApiKey, Depends(current_key)]


def require(scope: str):
    """The key must hold `scope` and be within its rate limit."""

    def check(key: CurrentKey, request: Request) -> ApiKey:
        if scope not in key.scope_set:
            raise forbidden(scope)
        wait_s = request.app.state.limiter.acquire(key.id)
        if wait_s > 0:
            raise rate_limited(retry_after_header(wait_s))
        return key

    return Depends(check)
