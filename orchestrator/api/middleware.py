"""ASGI middleware: read and check request bodies before any route parses them; time requests.

Both are plain ASGI rather than Starlette's `@app.middleware("http")`, which wraps every request
in extra tasks and streams; on two cores that cost about a quarter of /v1/triage's throughput
(loadtest/results). The timer wraps `send` instead to learn the status.
"""

import json
import re
import time
from collections.abc import Awaitable, Callable

import numpy as np
from prometheus_client import Histogram

from orchestrator.errors import body as error_body

MAX_HEADER_BYTES = 16_384  # all header names and values together; more gets 431
# Deeper JSON gets 422 before it is parsed: Python's json module and pydantic recurse once per
# level, and a few thousand levels raise RecursionError, which would otherwise be a 400 or a 500.
# No request schema comes near it (ticket metadata stops at 8 levels).
MAX_JSON_DEPTH = 64
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)  # linear: the branches are disjoint

Receive = Callable[[], Awaitable[dict]]


class BodySizeLimit:
    """Reads every request body here, whole, up to `max_bytes`, and refuses it before the route:

    - headers over `max_header_bytes` in all: 431;
    - a body over `max_bytes`, by Content-Length or counted as a chunked body arrives: 413;
    - a JSON body (or one without a Content-Type, which FastAPI parses as JSON) nested deeper
      than MAX_JSON_DEPTH: 422; one declared JSON that is not UTF-8: 422.

    Reading here, rather than counting inside the route's `receive`, is what makes the 413 sure:
    FastAPI turns any exception raised while it reads a body into a 400. The body is then
    replayed to the app as one message; routes read whole bodies anyway, so this holds no more
    in memory than they would.

    `path_limits` gives paths under a prefix a limit of their own (image uploads).
    """

    def __init__(
        self,
        app,
        max_bytes: int,
        max_header_bytes: int = MAX_HEADER_BYTES,
        path_limits: dict[str, int] | None = None,
    ):
        self.app, self.max_bytes, self.max_header_bytes = app, max_bytes, max_header_bytes
        self.path_limits = path_limits or {}

    def limit_for(self, path: str) -> int:
        for prefix, limit in self.path_limits.items():
            if path == prefix or path.startswith(prefix + "/"):
                return limit
        return self.max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = scope["headers"]
        if sum(len(name) + len(value) for name, value in headers) > self.max_header_bytes:
            return await _refuse(
                send, 431, f"request headers over the {self.max_header_bytes}-byte limit",
                "headers_too_large",
            )  # fmt: skip
        fields = dict(headers)
        declared = fields.get(b"content-length")
        if declared is None and b"transfer-encoding" not in fields:
            return await self.app(scope, receive, send)  # HTTP/1.1: no body at all
        max_bytes = self.limit_for(scope["path"])
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            return await _too_large(send, max_bytes)
        try:
            body = await _read_body(receive, max_bytes)
        except _ClientLeft:
            return  # nobody to answer
        if body is None:
            return await _too_large(send, max_bytes)
        content_type = fields.get(b"content-type")
        if content_type is None or _is_json(content_type):
            problem = json_problem(body, utf8=content_type is not None)
            if problem is not None:
                return await _refuse(send, 422, *problem)
        await self.app(scope, _replay(body, receive), send)


async def _too_large(send, max_bytes: int) -> None:
    await _refuse(send, 413, f"request body over the {max_bytes}-byte limit", "body_too_large")


class _ClientLeft(Exception):
    pass


async def _read_body(receive: Receive, max_bytes: int) -> bytes | None:
    """The whole body; None once it passes `max_bytes` (the rest is left unread)."""
    chunks, received = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientLeft
        chunk = message.get("body", b"")
        received += len(chunk)
        if received > max_bytes:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body as one message, then the real `receive` (a streaming answer waits on it to
    learn that the client left)."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replay() -> dict:
        return pending.pop() if pending else await receive()

    return replay


def _is_json(content_type: bytes) -> bool:
    """As FastAPI decides: application/json or application/*+json (or no Content-Type at all)."""
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or (
        media.startswith(b"application/") and media.endswith(b"+json")
    )


def json_problem(body: bytes, utf8: bool = True) -> tuple[str, str] | None:
    """(message, code) for a JSON body that FastAPI would answer with worse than a clear 422:

    not UTF-8, as RFC 8259 requires (FastAPI: a bare 400), or too deep (a RecursionError).
    """
    try:
        if utf8:
            body.decode()
    except UnicodeDecodeError as error:
        return f"JSON body is not UTF-8: {error.reason} at byte {error.start}", "invalid_json"
    if json_too_deep(body, MAX_JSON_DEPTH):
        return f"JSON body nested deeper than {MAX_JSON_DEPTH} levels", "json_too_deep"
    return None


def json_too_deep(body: bytes, limit: int) -> bool:
    """Whether `body` opens more than `limit` arrays and objects inside each other.

    Brackets inside strings do not count. Vectorised, since a hostile body is a megabyte of
    brackets; a body with few brackets is answered by counting alone.
    """
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    codes = np.frombuffer(_JSON_STRING.sub(b'""', body), dtype=np.uint8)
    steps = np.isin(codes, (0x5B, 0x7B)).astype(np.int32) - np.isin(codes, (0x5D, 0x7D))
    return bool(np.cumsum(steps).max() > limit)


async def _refuse(send, status: int, message: str, code: str) -> None:
    payload = json.dumps(error_body(message, "invalid_request_error", code=code)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


class RequestTimer:
    def __init__(self, app, histogram: Histogram):
        self.app, self.histogram = app, histogram

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, status = time.perf_counter(), 500

        async def send_and_note_status(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note_status)
        finally:
            route = scope.get("route")  # set by the router on this same scope
            template = getattr(route, "path", "unmatched")  # bounded: never the raw path
            self.histogram.labels(template, scope["method"], str(status)).observe(
                time.perf_counter() - started
            )
