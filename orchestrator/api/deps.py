"""Dependencies shared by the routers: database sessions, the calling key, its limits."""

import functools
import secrets
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select
from sqlalchemy.orm import Session

from orchestrator.api.keycache import Caller, KeyCache, caller_of
from orchestrator.db.models import ApiKey, Tenant
from orchestrator.errors import forbidden, unauthorized
from orchestrator.services.security import PLATFORM_SCOPE, digest


def get_session(request: Request) -> Iterator[Session]:
    with request.app.state.sessions() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


# Declared as security schemes so that /openapi.json shows how every route authenticates.
_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, scheme_name="ApiKey")
_bearer = HTTPBearer(auto_error=False, scheme_name="Bearer")


def client_ip(request: Request) -> str:
    """The peer address; behind a proxy, run uvicorn with --forwarded-allow-ips to get the
    client's own."""
    return request.client.host if request.client else "unknown"


async def limit_unauthenticated(request: Request) -> None:
    """Charge a request without a known-good key to its client IP and to all such traffic."""
    state = request.app.state
    await state.limiter.check(
        state.policy.unauthenticated(client_ip(request)),
        "too many requests without a valid API key from this client",
    )


async def current_key(
    request: Request,
    header_key: Annotated[str | None, Depends(_api_key_header)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    """The calling key; a missing, unknown or revoked key gets the same 401.

    Only a cached valid key skips the unauthenticated limits: every database lookup and every
    bad key is charged to the client's IP first, and bad digests are remembered, so a flood of
    keys costs neither a query per request nor unlimited requests.
    """
    presented = header_key if header_key is not None else (bearer.credentials if bearer else "")
    wanted = digest(presented)
    cache: KeyCache = request.app.state.key_cache
    caller = cache.get(wanted)
    if caller is not None:
        return caller
    await limit_unauthenticated(request)
    if cache.is_unknown(wanted):
        raise unauthorized()
    generation = cache.generation()  # before the lookup: a revocation meanwhile voids its put
    caller = await run_in_threadpool(_lookup, request, wanted)
    if caller is None:
        cache.put_unknown(wanted, generation)
        raise unauthorized()
    cache.put(wanted, caller, generation)
    return caller


def _lookup(request: Request, wanted: str) -> Caller | None:
    with request.app.state.sessions() as session:
        row = session.execute(
            select(ApiKey, Tenant.is_platform)
            .join(Tenant, Tenant.id == ApiKey.tenant_id)
            .where(ApiKey.digest == wanted)
        ).first()
        if row is None or row[0].revoked_at is not None:
            return None
        key, platform_tenant = row
        if not secrets.compare_digest(key.digest, wanted):
            return None
        return caller_of(key, platform_tenant)


CurrentKey = Annotated[Caller, Depends(current_key)]


def holds(caller: Caller, scope: str) -> bool:
    # A platform admin is also an admin of every tenant.
    return scope in caller.scope_set or (scope == "admin" and caller.platform)


async def limited_key(key: CurrentKey, request: Request) -> Caller:
    """The calling key, charged once per request to its own and its tenant's rate limits
    (FastAPI runs a dependency once per request, however many scope checks name it)."""
    state = request.app.state
    await state.limiter.check(
        state.policy.authenticated(key.id, key.tenant_id),
        "rate limit exceeded for this API key or its tenant",
    )
    return key


@functools.cache
def require(scope: str):
    """The key must hold `scope` (and be within its limits)."""

    async def check(key: Annotated[Caller, Depends(limited_key)]) -> Caller:
        if not holds(key, scope):
            raise forbidden(scope)
        return key

    return Depends(check)


# Tenant admins (`admin`) act on their own tenant; platform admins (`platform`) on all.
AdminKey = Annotated[Caller, require("admin")]
PlatformKey = Annotated[Caller, require(PLATFORM_SCOPE)]


def acting_tenant(caller: Caller) -> int | None:
    """The tenant an admin key is confined to; None for a platform admin."""
    return None if caller.platform else caller.tenant_id
