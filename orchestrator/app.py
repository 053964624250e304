"""The app factory: long-lived clients are built once in the lifespan and kept on app.state."""

import time
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from orchestrator.api.routes import admin, health, triage
from orchestrator.db.session import make_engine, session_factory
from orchestrator.errors import install_handlers
from orchestrator.metrics import Metrics
from orchestrator.ratelimit import RateLimiter
from orchestrator.services.keys import ensure_admin_key
from orchestrator.settings import OrchestratorSettings, TritonSettings
from orchestrator.triton.triage_client import TriageClient


def create_app(
    settings: OrchestratorSettings | None = None, triton: TritonSettings | None = None
) -> FastAPI:
    settings = settings or OrchestratorSettings()
    triton = triton or TritonSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        engine = make_engine(settings.database_url)
        app.state.sessions = session_factory(engine)
        if settings.admin_key:
            with app.state.sessions() as session:
                ensure_admin_key(session=session, key=settings.admin_key)
        app.state.triage = TriageClient(triton.grpc_url, timeout_s=settings.triage_timeout_s)
        try:
            yield
        finally:
            await app.state.triage.close()
            engine.dispose()

    app = FastAPI(title="Support inference orchestrator", version="0.1.0", lifespan=lifespan)
    app.state.metrics = Metrics()
    app.state.limiter = RateLimiter(settings.rate_limit_per_minute, settings.rate_limit_burst)
    install_handlers(app)
    for router in (health.router, admin.router, triage.router):
        app.include_router(router)
    _instrument(app)
    return app


def _instrument(app: FastAPI) -> None:
    metrics: Metrics = app.state.metrics

    @app.middleware("http")
    async def time_requests(request: Request, call_next):
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        template = getattr(route, "path", "unmatched")  # bounded: never the raw path
        metrics.request_seconds.labels(template, request.method, str(response.status_code)).observe(
            time.perf_counter() - started
        )
        return response

    @app.get("/metrics", include_in_schema=False)
    def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
