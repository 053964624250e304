"""The app factory: long-lived clients are built once in the lifespan and kept on app.state."""

import asyncio
import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI, Response
from fastapi.concurrency import run_in_threadpool
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from contracts.image_store import (
    ImageStoreSettings,
    ImageStoreUnavailable,
    ObjectStoreImages,
    open_image_store,
)
from orchestrator.api.keycache import Caller, KeyCache
from orchestrator.api.middleware import BodySizeLimit, RequestTimer
from orchestrator.api.publiclimit import PublicRouteLimit
from orchestrator.api.quotas import LLMQuotas, llm_slot
from orchestrator.api.ratelimit import Limiter, Policy, Rate
from orchestrator.api.revocations import Revocations
from orchestrator.api.routes import (
    admin,
    chat,
    configs,
    control,
    credit,
    diagnoses,
    health,
    intake,
    me,
    monitoring,
    tickets,
    triage,
)
from orchestrator.api.shared import make_store
from orchestrator.db.session import make_engine, session_factory
from orchestrator.errors import install_handlers
from orchestrator.metrics import Metrics
from orchestrator.services.canary import watch_of
from orchestrator.services.chat import ChatService
from orchestrator.services.configs import ConfigStore
from orchestrator.services.control import ControlService
from orchestrator.services.diagnoses import purge_expired
from orchestrator.services.drift import runs as drift_runs
from orchestrator.services.drift.monitor import DriftMonitor
from orchestrator.services.failover import make_llm
from orchestrator.services.keys import ensure_bootstrap_key
from orchestrator.services.retrain_runs import RetrainRuns
from orchestrator.services.rollout_record import RolloutRecorder
from orchestrator.services.settled import SettledTickets
from orchestrator.services.versions import VersionStore
from orchestrator.services.watchdog import ResourceWatchdog
from orchestrator.settings import DriftSettings, OrchestratorSettings, TritonSettings
from orchestrator.triton.coalesce import coalescing
from orchestrator.triton.control import ModelControl, TritonProcesses
from orchestrator.triton.credit_client import CreditClient
from orchestrator.triton.embed_client import EmbeddingClient
from orchestrator.triton.replicas import Replicas, inference_urls
from orchestrator.triton.triage_client import TriageClient
from orchestrator.triton.xray_client import XrayClient
from orchestrator.web import install as install_workspace
from orchestrator.worker import queue as jobs
from orchestrator.worker.drift_job import DriftJob
from orchestrator.worker.runner import Worker

log = logging.getLogger(__name__)

DESCRIPTION = """
The public door of the support back end: tickets (JSON, e-mail, signed webhooks) are stored
durably, triaged by Triton's `ticket_triage` ensemble and drafted by the `llm` model (or its
fallback, `llm_fallback`, while `llm` fails: answers name the model that wrote them);
OpenAI-compatible chat; and a control plane for Triton's models.

Authenticate with `X-API-Key: <key>` or `Authorization: Bearer <key>`. Errors have one shape:
`{"error": {"message", "type", "param", "code"}}`.
"""


def create_app(
    settings: OrchestratorSettings | None = None,
    triton: TritonSettings | None = None,
    drift: DriftSettings | None = None,
    images: ImageStoreSettings | None = None,
) -> FastAPI:
    settings = settings or OrchestratorSettings()
    triton = triton or TritonSettings()
    drift = drift or DriftSettings()
    image_store = open_image_store(images)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        engine = await run_in_threadpool(make_engine, settings.database_url)
        app.state.sessions = session_factory(engine)
        app.state.configs = ConfigStore(app.state.sessions, settings)
        app.state.versions = VersionStore(app.state.sessions, settings.version_cache_s)
        app.state.canary = watch_of(
            app.state.sessions, app.state.versions, app.state.metrics, settings
        )
        canary_task = asyncio.create_task(app.state.canary.run())
        app.state.retrain_runs = RetrainRuns(app.state.sessions, settings.database_url)
        await run_in_threadpool(app.state.retrain_runs.recover)
        app.state.rollout_recorder = RolloutRecorder(
            settings.registry, app.state.sessions, app.state.metrics.mlflow_record_failures
        )
        if settings.admin_key:
            await _bootstrap(app, settings.admin_key)
        revocation_task = asyncio.create_task(app.state.revocations.run())
        app.state.triage = coalescing(
            TriageClient(
                inference_urls(triton.replicas, triton.grpc_url),
                timeout_s=settings.triage_timeout_s,
                call_timeout_s=settings.triton_call_timeout_s,
            ),
            settings.triage_coalesce_in_flight,
        )
        app.state.xray = XrayClient(triton.grpc_url, timeout_s=settings.xray_timeout_s)
        await run_in_threadpool(_prepare_image_store, app.state.image_store)
        app.state.credit = CreditClient(triton.grpc_url, timeout_s=settings.credit_timeout_s)
        retention_task = asyncio.create_task(_expire_diagnoses(app, settings.diagnosis_sweep_s))
        # The primary LLM and its fallback behind one breaker (services/failover.py)
        app.state.llm = make_llm(settings, triton.grpc_url, app.state.metrics)
        app.state.control = control_of(settings, triton)(triton.grpc_url)
        replicas = (
            Replicas(triton.replicas, control_of(settings, triton)) if triton.replicas else None
        )
        app.state.control_service = ControlService(
            app.state.control,
            TritonProcesses(triton.grpc_port),
            app.state.sessions,
            app.state.metrics,
            wait_s=settings.triton_load_timeout_s,
            replicas=replicas,
        )
        app.state.chat = ChatService(
            app.state.llm,
            app.state.sessions,
            app.state.metrics,
            settings,
            quota=_tenant_quota(app),
            configs=app.state.configs,
        )
        app.state.watchdog.start()
        worker_task = drift_job = drift_task = None
        if settings.worker_in_process:
            app.state.worker = make_worker(app, settings)
            worker_task = asyncio.create_task(app.state.worker.run())
            if drift.interval_s:
                drift_job = make_drift_job(app, triton, drift)
                drift_task = asyncio.create_task(drift_job.run())
        try:
            yield
        finally:
            if worker_task is not None:
                await app.state.worker.stop()
                await worker_task
            if drift_job is not None:
                drift_job.stop()
                drift_task.cancel()  # a pass in flight is dropped; the next one redoes it
                await asyncio.gather(drift_task, return_exceptions=True)
                await drift_job.monitor.embedder.close()
            revocation_task.cancel()
            canary_task.cancel()
            retention_task.cancel()
            await app.state.retrain_runs.stop()
            app.state.watchdog.stop()
            if app.state.shared is not None:
                await app.state.shared.close()
            await app.state.triage.close()
            await app.state.xray.close()
            await app.state.credit.close()
            await app.state.llm.close()
            await app.state.control.close()
            if replicas is not None:
                await replicas.close()
            engine.dispose()

    app = FastAPI(
        title="Support inference orchestrator",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.drift_settings = drift
    # where the drift references are read (beside the x-ray versions and the credit model)
    app.state.model_repository = triton.model_repository
    app.state.image_store = image_store  # None: images in their database rows
    app.state.settled = SettledTickets()
    app.state.metrics = Metrics()
    app.state.watchdog = ResourceWatchdog(app.state.metrics.registry)
    _limits(app, settings)
    install_handlers(app)
    routers = (health, me, admin, configs, triage, tickets, intake, chat, control, monitoring)
    for module in (*routers, diagnoses, credit):
        app.include_router(module.router)
    app.include_router(tickets.feedback_router)
    install_workspace(app)  # the agent workspace at /app (orchestrator/web)
    _instrument(app)
    app.add_middleware(PublicRouteLimit, fastapi_app=app)
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.max_body_bytes,
        path_limits={diagnoses.router.prefix: settings.max_image_bytes + MULTIPART_SLACK_BYTES},
    )
    return app


# An image's body may be this much larger than the image: a multipart form's boundaries and headers
MULTIPART_SLACK_BYTES = 16 * 1024


async def _expire_diagnoses(app: FastAPI, interval_s: float) -> None:
    """Delete diagnoses past their retention, now and every `interval_s` (reads already hide
    them from the moment they expire)."""
    while True:
        try:
            removed = await run_in_threadpool(_purge_expired, app)
            if removed:
                log.info("deleted %d diagnoses past their retention", removed)
        except Exception:  # the next sweep retries; serving goes on
            log.exception("deleting expired diagnoses failed")
        await asyncio.sleep(interval_s)


def _prepare_image_store(store) -> None:
    """An object store's bucket, made where missing; one that cannot be reached now is logged,
    and its diagnoses answer 503 until it can."""
    if isinstance(store, ObjectStoreImages):
        try:
            store.ensure_bucket()
        except ImageStoreUnavailable as error:
            log.warning("%s; diagnoses answer 503 until it can", error)


def _purge_expired(app: FastAPI) -> int:
    with app.state.sessions() as session:
        return purge_expired(session, app.state.image_store)


def _limits(app: FastAPI, settings: OrchestratorSettings) -> None:
    """Key cache, rate limits, LLM quotas and revocations; shared through Redis when set."""
    registry = app.state.metrics.registry
    app.state.shared = make_store(settings.redis_url, settings.redis_prefix, registry)
    app.state.key_cache = KeyCache(settings.key_cache_s)
    app.state.revocations = Revocations(
        app.state.key_cache, app.state.shared, settings.revocation_poll_s
    )
    app.state.limiter = Limiter(registry, app.state.shared)
    key = Rate(settings.rate_limit_per_minute, settings.rate_limit_burst)
    app.state.policy = Policy(
        key=key,
        tenant=Rate(
            settings.tenant_rate_limit_per_minute or 2 * key.per_minute,
            settings.tenant_rate_limit_burst or 2 * key.burst,
        ),
        ip=Rate(settings.ip_rate_limit_per_minute, settings.ip_rate_limit_burst),
        anonymous=Rate(
            settings.anonymous_rate_limit_per_minute, settings.anonymous_rate_limit_burst
        ),
    )
    app.state.llm_quotas = LLMQuotas(
        app.state.limiter, settings.tenant_llm_concurrency, settings.tenant_llm_tokens_per_minute
    )


async def _bootstrap(app: FastAPI, key: str) -> None:
    """The environment's admin key works; the earlier ones made from it no longer do."""

    def ensure() -> list[int]:
        with app.state.sessions() as session:
            return ensure_bootstrap_key(session=session, key=key)

    revoked = await run_in_threadpool(ensure)
    if revoked:
        log.warning("ORCHESTRATOR_ADMIN_KEY changed: revoked earlier bootstrap keys %s", revoked)
        await app.state.revocations.publish()


def _tenant_quota(app: FastAPI):
    """Chat's per-tenant concurrency and token budget (orchestrator.api.quotas)."""

    @asynccontextmanager
    async def quota(caller: Caller, max_tokens: int):
        async with llm_slot(app.state, caller.tenant_id, max_tokens) as slot:
            yield slot

    return quota


def control_of(settings: OrchestratorSettings, triton: TritonSettings):
    """A maker of the ModelControl of the Triton at an address."""

    def make(url: str) -> ModelControl:
        return ModelControl(
            url,
            triton.model_repository,
            call_timeout_s=settings.triton_call_timeout_s,
            load_timeout_s=settings.triton_load_timeout_s,
            headers=triton.control_headers,
        )

    return make


def make_worker(app: FastAPI, settings: OrchestratorSettings) -> Worker:
    state = app.state
    worker = Worker(
        state.sessions,
        state.triage,
        state.llm,
        state.metrics,
        settings,
        configs=state.configs,
        versions=state.versions,
        canary=state.canary,
    )
    worker.on_settled = state.settled.notify  # requests waiting on a ticket answer at once
    return worker


def make_drift_job(app: FastAPI, triton: TritonSettings, drift: DriftSettings) -> DriftJob:
    state = app.state
    embedder = EmbeddingClient(triton.grpc_url)
    monitor = DriftMonitor(state.sessions, state.triage, embedder, drift, state.metrics.drift)
    return DriftJob(monitor, drift.interval_s)


def _instrument(app: FastAPI) -> None:
    metrics: Metrics = app.state.metrics

    app.add_middleware(RequestTimer, histogram=metrics.request_seconds)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus() -> Response:
        await run_in_threadpool(_read_queue, app)
        await run_in_threadpool(_read_drift, app)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)


def _read_queue(app: FastAPI) -> None:
    """The job queue's depth and age, read from the database when Prometheus scrapes."""
    try:
        with app.state.sessions() as session:
            depth, age = jobs.queue_stats(session)
    except Exception:
        log.warning("could not read the job queue for /metrics", exc_info=True)
        return
    app.state.metrics.queue_depth.set(depth)
    app.state.metrics.queue_oldest_age.set(age)


def _read_drift(app: FastAPI) -> None:
    """The latest drift pass, whichever worker ran it, read when Prometheus scrapes."""
    try:
        with app.state.sessions() as session:
            latest = drift_runs.latest_pass(session)
    except Exception:
        log.warning("could not read the latest drift pass for /metrics", exc_info=True)
        return
    app.state.metrics.drift.show(latest)
