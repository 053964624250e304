import asyncio
from collections.abc import Awaitable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict:
    return {"status": "ok"}


@router.get("/readyz", summary="The database is reachable and the required Triton models are ready")
async def readyz(request: Request):
    """Both checks at once, each within `ready_timeout_s`: a hung dependency is "not ready"
    in bounded time, and the event loop keeps serving while the database answers."""
    timeout_s = request.app.state.settings.ready_timeout_s
    database, triage = await asyncio.gather(
        _within(asyncio.to_thread(_database_ok, request), timeout_s),
        _within(request.app.state.triage.ready(), timeout_s),
    )
    checks = {"database": database, "ticket_triage": triage}
    ready = all(checks.values())
    if ready:
        return JSONResponse({"ready": True, "checks": checks})
    return JSONResponse(
        {"ready": False, "checks": checks}, status_code=503, headers={"Retry-After": "5"}
    )


async def _within(check: Awaitable[bool], timeout_s: float) -> bool:
    try:
        return await asyncio.wait_for(check, timeout_s)
    except TimeoutError:
        return False


def _database_ok(request: Request) -> bool:
    try:
        with request.app.state.sessions() as session:
            session.execute(text("SELECT 1"))
        return True
    except Exception:  # any fault reaching the database means "not ready", never a 500
        return False
