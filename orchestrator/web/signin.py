"""Signing in with an API key (exchanged for an HttpOnly session cookie) and signing out."""

import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse

from orchestrator.api.deps import current_key, holds
from orchestrator.errors import ApiError
from orchestrator.services.web_sessions import SignedIn, close_session, open_session
from orchestrator.web.auth import (
    COOKIE_PATH,
    LOGIN_COOKIE,
    SESSION_COOKIE,
    check_same_origin,
    csrf_failed,
    signed_in,
)
from orchestrator.web.pages import render

router = APIRouter(prefix="/app", include_in_schema=False)
MAX_KEY_CHARS = 200


@router.get("/login")
def login_form(request: Request, signed_out: bool = False):
    token = secrets.token_urlsafe(32)
    response = render(request, "login.html", csrf=token, signed_out=signed_out)
    _set_cookie(request, response, LOGIN_COOKIE, token, max_age=3600)
    return response


@router.post("/login")
async def login(
    request: Request,
    api_key: Annotated[str, Form(max_length=MAX_KEY_CHARS)],
    csrf_token: Annotated[str, Form(max_length=100)],
):
    expected = request.cookies.get(LOGIN_COOKIE, "")
    if not expected or not secrets.compare_digest(csrf_token, expected):
        raise csrf_failed("the sign-in form expired: reload it and try again")
    try:
        caller = await current_key(request, api_key.strip(), None)
    except ApiError as error:
        if error.status != 401:
            raise  # 429: too many bad keys from this client
        return render(request, "login.html", 401, csrf=expected, problem="That key is not valid.")
    if not holds(caller, "tickets:read"):
        problem = "That key cannot read tickets (it needs the tickets:read scope)."
        return render(request, "login.html", 403, csrf=expected, problem=problem)
    hours = request.app.state.settings.web_session_hours
    token, _ = await run_in_threadpool(_open, request, caller, hours)
    response = RedirectResponse("/app", status_code=303)
    _set_cookie(request, response, SESSION_COOKIE, token, max_age=int(hours * 3600))
    response.delete_cookie(LOGIN_COOKIE, path=COOKIE_PATH)
    return response


def _open(request: Request, caller, hours: float) -> tuple[str, str]:
    with request.app.state.sessions() as session:
        return open_session(session, caller, hours)


@router.post("/logout")
async def logout(request: Request, signed: Annotated[SignedIn, Depends(signed_in)]):
    await check_same_origin(request, signed.csrf_token)
    token = request.cookies[SESSION_COOKIE]

    def close() -> None:
        with request.app.state.sessions() as session:
            close_session(session, token)

    await run_in_threadpool(close)
    response = RedirectResponse("/app/login?signed_out=true", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH)
    return response


def _set_cookie(request: Request, response, name: str, value: str, max_age: int) -> None:
    secure = request.url.scheme == "https" or request.app.state.settings.web_secure_cookie
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=COOKIE_PATH,
        httponly=True,
        secure=secure,
        samesite="strict",
    )
