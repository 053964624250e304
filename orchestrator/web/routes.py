"""Mounting the workspace on the app: its routers, its static files, and what a request
without a session gets (pages: the sign-in form; scripts' calls: a 401)."""

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from orchestrator.errors import body
from orchestrator.web import queue, signin, ticket_page
from orchestrator.web.auth import SignInRequired
from orchestrator.web.pages import HERE


def install(app: FastAPI) -> None:
    for module in (signin, queue, ticket_page):
        app.include_router(module.router)
    app.mount("/app/static", StaticFiles(directory=HERE / "static"), name="app-static")
    app.state.web_event_streams = 0  # live queues open in this process (web/queue.py)

    @app.exception_handler(SignInRequired)
    async def _sign_in(request: Request, _error: SignInRequired):
        if request.method == "GET" and "text/html" in request.headers.get("accept", ""):
            return RedirectResponse("/app/login", status_code=303)
        answer = body(
            "sign in to the workspace first", "authentication_error", None, "not_signed_in"
        )
        return JSONResponse(answer, status_code=401)
