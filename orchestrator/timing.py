"""Request latency by route template, as plain ASGI middleware.

Starlette's `@app.middleware("http")` wraps every request in extra tasks and streams; on two
cores it cost about a quarter of /v1/triage's throughput (loadtest/results), so the timer
wraps `send` instead to learn the status.
"""

import time

from prometheus_client import Histogram


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
