"""ASGI middleware: routes that take no API key (the signed webhook, /readyz, /metrics, the
docs) are charged to the client IP and the anonymous total like a bad key would be.

Which routes are public is read from the app itself (its OpenAPI document shows which
routes take a key), so that a new public route is limited without being listed. /healthz is
left alone: it costs nothing, and a liveness probe must never see 429.
"""

import json

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.routing import Route

from orchestrator.api.deps import current_key
from orchestrator.errors import ApiError
from orchestrator.errors import body as error_body

EXEMPT = frozenset({"/healthz"})


def _asks_for_key(dependant: Dependant) -> bool:
    return any(d.call is current_key or _asks_for_key(d) for d in dependant.dependencies)


def public_paths(app: FastAPI) -> frozenset[str]:
    """Paths (without parameters) of the routes that take no key: read from the OpenAPI
    document, where every keyed route names its security scheme, plus the routes kept out of
    it (/metrics, the docs)."""
    paths = {
        path
        for path, operations in app.openapi()["paths"].items()
        if not any(operation.get("security") for operation in operations.values())
    }
    for route in app.routes:  # the app's own routes; included routers are in the document
        if isinstance(route, APIRoute) and (
            route.include_in_schema or _asks_for_key(route.dependant)
        ):
            continue
        if isinstance(route, Route):
            paths.add(route.path)
    return frozenset(p for p in paths if "{" not in p and p not in EXEMPT)


class PublicRouteLimit:
    def __init__(self, app, fastapi_app: FastAPI):
        self.app, self.fastapi_app = app, fastapi_app
        self._public: frozenset[str] | None = None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if self._public is None:  # every route exists by the first request
            self._public = public_paths(self.fastapi_app)
        if scope["path"] in self._public:
            state = self.fastapi_app.state
            client = scope.get("client")
            try:
                await state.limiter.check(
                    state.policy.unauthenticated(client[0] if client else "unknown"),
                    "too many requests from this client",
                )
            except ApiError as refused:
                return await _send_error(send, refused)
        return await self.app(scope, receive, send)


async def _send_error(send, error: ApiError) -> None:
    payload = json.dumps(error_body(error.message, error.type, error.param, error.code)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(payload))]
    headers += [(k.lower().encode(), v.encode()) for k, v in (error.headers or {}).items()]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
