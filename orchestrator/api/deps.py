"""Dependencies shared by the routers: database sessions and the calling key."""

import secrets
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select
from sqlalchemy.orm import Session

from orchestrator.api.keycache import Caller, KeyCache
from orchestrator.api.ratelimit import retry_after_header
from orchestrator.db.models import ApiKey
from orchestrator.errors import forbidden, rate_limited, unauthorized
from orchestrator.services.security import digest


def get_session(request: Request) -> Iterator[Session]:
    with request.app.state.sessions() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


# Declared as security schemes so that /openapi.json shows how every route authenticates.
_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, scheme_name="ApiKey")
_bearer = HTTPBearer(auto_error=False, scheme_name="Bearer")


async def current_key(
    request: Request,
    header_key: Annotated[str | None, Depends(_api_key_header)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    """The calling key; a missing, unknown or revoked key gets the same 401."""
    presented = header_key if header_key is not None else (bearer.credentials if bearer else "")
    wanted = digest(presented)
    cache: KeyCache = request.app.state.key_cache
    caller = cache.get(wanted)
    if caller is None:
        caller = await run_in_threadpool(_lookup, request, wanted)
        cache.put(wanted, caller)
    return caller


def _lookup(request: Request, wanted: str) -> Caller:
    with request.app.state.sessions() as session:
        key = session.scalar(select(ApiKey).where(ApiKey.digest == wanted))
        if key is None or key.revoked_at is not None:
            raise unauthorized()
        if not secrets.compare_digest(key.digest, wanted):
            raise unauthorized()
        return Caller(key.id, key.tenant_id, key.scope_set)


CurrentKey = Annotated[Caller, Depends(current_key)]


def require(scope: str):
    """The key must hold `scope` and be within its rate limit."""

    async def check(key: CurrentKey, request: Request) -> Caller:
        if scope not in key.scope_set:
            raise forbidden(scope)
        wait_s = request.app.state.limiter.acquire(key.id)
        if wait_s > 0:
            raise rate_limited(retry_after_header(wait_s))
        return key

    return Depends(check)
