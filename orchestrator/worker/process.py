"""`python -m orchestrator worker`: the ticket worker in its own process, stopped by SIGTERM."""

import asyncio
import logging
import signal
from functools import partial

from prometheus_client import start_http_server

from orchestrator.db.session import make_engine, session_factory
from orchestrator.metrics import Metrics
from orchestrator.services.canary import watch_of
from orchestrator.services.credit_drift import run_credit_pass
from orchestrator.services.drift.monitor import DriftMonitor
from orchestrator.services.failover import make_llm
from orchestrator.services.versions import VersionStore
from orchestrator.services.watchdog import ResourceWatchdog
from orchestrator.settings import DriftSettings, OrchestratorSettings, TritonSettings
from orchestrator.triton.embed_client import EmbeddingClient
from orchestrator.triton.replicas import inference_urls
from orchestrator.triton.triage_client import TriageClient
from orchestrator.worker.drift_job import DriftJob
from orchestrator.worker.runner import Worker


def run_worker(settings: OrchestratorSettings, triton: TritonSettings, metrics_port: int) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    return asyncio.run(_run(settings, triton, metrics_port))


async def _run(settings: OrchestratorSettings, triton: TritonSettings, metrics_port: int) -> int:
    engine = make_engine(settings.database_url)
    metrics = Metrics()
    watchdog = ResourceWatchdog(metrics.registry)
    if metrics_port:
        start_http_server(metrics_port, addr=settings.host, registry=metrics.registry)
    triage = TriageClient(
        inference_urls(triton.replicas, triton.grpc_url), timeout_s=settings.triage_timeout_s
    )
    llm = make_llm(settings, triton.grpc_url, metrics)
    sessions = session_factory(engine)
    versions = VersionStore(sessions, settings.version_cache_s)
    canary = watch_of(sessions, versions, metrics, settings)  # judges this process's calls
    worker = Worker(sessions, triage, llm, metrics, settings, versions=versions, canary=canary)
    canary_task = asyncio.create_task(canary.run())
    drift = DriftSettings()
    embedder = EmbeddingClient(triton.grpc_url)
    credit = partial(
        run_credit_pass, sessions, versions, triton.model_repository, metrics.credit_psi
    )
    drift_job = DriftJob(
        DriftMonitor(sessions, triage, embedder, drift, metrics.drift),
        drift.interval_s,
        side_passes=[credit],
    )
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, lambda: asyncio.ensure_future(worker.stop()))
    watchdog.start()
    print(f"worker {worker.token[:8]} running against Triton at {triton.grpc_url}", flush=True)
    drift_task = asyncio.create_task(drift_job.run()) if drift.interval_s else None
    try:
        await worker.run()
    finally:
        canary_task.cancel()
        if drift_task is not None:
            drift_task.cancel()  # a pass in flight is dropped; the next one redoes it
            await asyncio.gather(drift_task, return_exceptions=True)
        await embedder.close()
        watchdog.stop()
        await triage.close()
        await llm.close()
        engine.dispose()
    return 0
