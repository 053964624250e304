"""Who is signed in to the workspace: the session cookie, its CSRF token, and the checks every
page and action makes (scope, rate limits, same-origin writes)."""

import secrets
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool

from orchestrator.api.deps import holds, limit_unauthenticated, limited_key
from orchestrator.errors import ApiError, forbidden
from orchestrator.services.web_sessions import SignedIn, find_session

SESSION_COOKIE = "support_session"
LOGIN_COOKIE = "support_login"  # the sign-in form's own CSRF token (double submit)
COOKIE_PATH = "/app"
MAX_TOKEN_CHARS = 100  # a cookie longer than any token we issue is not looked up


class SignInRequired(Exception):
    """No valid session: pages redirect to the sign-in form, other calls get a 401."""


def csrf_failed(message: str) -> ApiError:
    return ApiError(403, message, type="permission_error", code="csrf_failed")


async def signed_in(request: Request) -> SignedIn:
    token = request.cookies.get(SESSION_COOKIE, "")
    found = None
    if 0 < len(token) <= MAX_TOKEN_CHARS:
        found = await run_in_threadpool(_find, request, token)
    if found is None:
        await limit_unauthenticated(request)
        raise SignInRequired()
    await limited_key(found.caller, request)
    return found


def _find(request: Request, token: str) -> SignedIn | None:
    with request.app.state.sessions() as session:
        return find_session(session, token)


async def check_same_origin(request: Request, expected_token: str) -> None:
    """A write must come from our own pages: not cross-site, and carrying the CSRF token in
    the `X-CSRF-Token` header (scripts) or the `csrf_token` field (forms)."""
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        raise csrf_failed("cross-site requests cannot change tickets")
    origin = request.headers.get("origin")
    if origin is not None and origin != _own_origin(request):
        raise csrf_failed("the request's Origin is not this workspace")
    sent = request.headers.get("x-csrf-token")
    if sent is None and _is_form(request):
        sent = (await request.form()).get("csrf_token")
    if not isinstance(sent, str) or not secrets.compare_digest(sent, expected_token):
        raise csrf_failed("missing or wrong CSRF token: reload the page and try again")


def _own_origin(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}"


def _is_form(request: Request) -> bool:
    kind = request.headers.get("content-type", "")
    return kind.startswith(("application/x-www-form-urlencoded", "multipart/form-data"))


def agent(scope: str, *, writes: bool = False):
    """A signed-in agent holding `scope`; a write also passes the same-origin checks."""

    async def check(request: Request, signed: Annotated[SignedIn, Depends(signed_in)]):
        if writes:
            await check_same_origin(request, signed.csrf_token)
        if not holds(signed.caller, scope):
            raise forbidden(scope)
        return signed

    return Depends(check)


Reader = Annotated[SignedIn, agent("tickets:read")]
Writer = Annotated[SignedIn, agent("tickets:write", writes=True)]
