"""The app factory: long-lived clients are built once in the lifespan and kept on app.state."""

from contextlib import asynccontextmanager

from fastapi import FastAPI

from orchestrator.api.routes import admin, health, triage
from orchestrator.db.session import make_engine, session_factory
from orchestrator.errors import install_handlers
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
    install_handlers(app)
    for router in (health.router, admin.router, triage.router):
        app.include_router(router)
    return app
