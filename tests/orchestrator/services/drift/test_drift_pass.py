"""A drift pass on the real stack: the test model in a real Triton, tickets in a database,
Evidently's statistics. One tenant sends ordinary Banking77 test texts and stays quiet; another
sends cooking questions in German, Spanish and English: its gauges pass the warning levels and
fire the alerts of deploy/prometheus/alerts.yml."""

import asyncio
import json
import os
import subprocess
import sys
import time

import pytest

from contracts import PROJECT_ROOT
from orchestrator.db.session import make_engine, session_factory
from orchestrator.metrics import Metrics
from orchestrator.services.drift.monitor import DriftMonitor
from orchestrator.settings import DriftSettings
from orchestrator.triton.embed_client import EmbeddingClient
from orchestrator.triton.triage_client import TriageClient
from tests.utils.drift import (
    add_tenant,
    add_ticket,
    banking77_test_texts,
    correct_intent,
    drifted_texts,
    firing_drift_alerts,
)

CORRECTED = 12  # of the drifted tenant's 80 tickets


@pytest.fixture(scope="module")
def stack(tmp_path_factory, triton_settings, triton):
    """A database holding three tenants' triaged tickets, and the drift settings to use."""
    folder = tmp_path_factory.mktemp("drift")
    url = f"sqlite:///{folder / 'orchestrator.db'}"
    settings = DriftSettings(
        reference_size=400, reports_dir=folder / "reports", cache_dir=folder / "cache"
    )
    engine = make_engine(url)
    sessions = session_factory(engine)
    traffic = {
        # not the reference's own texts (the test split's first 400 across the intents)
        "calm": banking77_test_texts(150, skip=settings.reference_size),
        "shifted": drifted_texts(),
        "tiny": banking77_test_texts(10, skip=settings.reference_size + 150),  # under the
        # minimum sample: not compared alone
    }
    asyncio.run(_store(sessions, triton_settings.grpc_url, traffic))
    yield url, sessions, settings
    engine.dispose()


async def _store(sessions, url: str, traffic: dict[str, list[str]]) -> None:
    triage = TriageClient(url)
    try:
        for tenant, texts in traffic.items():
            predictions = []
            for i in range(0, len(texts), 64):
                predictions += await triage.classify(texts[i : i + 64])
            with sessions() as session:
                tenant_id, key_id = add_tenant(session, tenant)
                tickets = [
                    add_ticket(session, tenant_id, t, p)
                    for t, p in zip(texts, predictions, strict=True)
                ]
                if tenant == "shifted":
                    for ticket in tickets[:CORRECTED]:
                        correct_intent(session, ticket, key_id, "card_arrival")
                session.commit()
    finally:
        await triage.close()


async def _pass(sessions, url: str, settings: DriftSettings, metrics: Metrics):
    triage, embedder = TriageClient(url), EmbeddingClient(url)
    try:
        return await DriftMonitor(sessions, triage, embedder, settings, metrics.drift).run_pass()
    finally:
        await triage.close()
        await embedder.close()


def test_drifted_traffic_raises_the_gauges_and_ordinary_traffic_stays_quiet(stack, triton_settings):
    _, sessions, settings = stack
    metrics = Metrics()
    started = time.perf_counter()
    result = asyncio.run(_pass(sessions, triton_settings.grpc_url, settings, metrics))
    seconds = time.perf_counter() - started
    runs = {run.tenant: run for run in result.runs}
    print(f"\ndrift pass: {seconds:.1f} s")
    for run in runs.values():
        signals = {k: round(v["score"], 4) for k, v in run.columns.items()}
        print(
            f"  {run.tenant}: {run.current_size} tickets, share {run.drift_share:.2f},"
            f" prediction {run.prediction_drift_score:.3f}, MMD {run.embedding_drift_score:.4f},"
            f" override {run.override_rate}, {run.seconds:.1f} s, {signals}"
        )
    assert set(runs) == {"all", "calm", "shifted"}
    assert [s.name for s in result.skipped] == ["tiny"]

    calm, shifted = runs["calm"], runs["shifted"]
    assert not calm.drifted
    assert calm.drift_share < settings.warning_share
    assert calm.prediction_drift_score < settings.warning_prediction_score
    assert calm.override_rate is None  # no agent corrected any
    assert shifted.drifted
    assert shifted.drift_share >= settings.warning_share
    assert shifted.prediction_drift_score >= settings.warning_prediction_score
    assert shifted.columns["language"]["drifted"] and shifted.columns["embedding"]["drifted"]
    assert shifted.override_rate == pytest.approx(CORRECTED / 80)
    assert runs["all"].current_size == 240

    def gauge(name: str, tenant: str) -> float | None:
        return metrics.registry.get_sample_value(name, {"tenant": tenant})

    assert gauge("support_drift_share", "shifted") >= settings.warning_share
    assert gauge("support_prediction_drift_score", "shifted") >= settings.warning_prediction_score
    assert gauge("support_drift_share", "calm") < settings.warning_share
    assert gauge("support_prediction_drift_score", "calm") < settings.warning_prediction_score
    assert gauge("support_override_rate", "shifted") == pytest.approx(CORRECTED / 80)
    assert gauge("support_override_rate", "calm") is None
    assert gauge("support_drift_share", "tiny") is None
    alerts = firing_drift_alerts(metrics.registry)
    print(f"  alerts: {sorted(alerts)}")
    assert {("SupportInputDrift", "warning", "shifted")} <= alerts
    assert {("SupportPredictionDrift", "warning", "shifted")} <= alerts
    assert not {alert for alert in alerts if alert[2] == "calm"}
    assert len(list(settings.reports_dir.glob(f"{result.pass_id}-*.html"))) == 3
    assert len(list(settings.cache_dir.glob("*.npz"))) == 1  # the reference, for the next pass


def test_the_command_runs_one_pass_from_the_cached_reference(stack, triton_settings):
    url, _, settings = stack
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "TRITON_GRPC_PORT": str(triton_settings.grpc_port),
        "DRIFT_REFERENCE_SIZE": str(settings.reference_size),
        "DRIFT_REPORTS_DIR": str(settings.reports_dir),
        "DRIFT_CACHE_DIR": str(settings.cache_dir),
    }
    cached = {p: p.stat().st_mtime_ns for p in settings.cache_dir.glob("*.npz")}
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", "drift"],
        capture_output=True,
        text=True,
        env=env,
        cwd=PROJECT_ROOT,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout)
    runs = {run["tenant"]: run for run in summary["runs"]}
    assert set(runs) == {"all", "calm", "shifted"}
    assert runs["shifted"]["drifted"] and not runs["calm"]["drifted"]
    assert summary["skipped"] == [{"tenant": "tiny", "tickets": 10}]
    assert runs["shifted"]["report_url"] == f"/v1/monitoring/reports/{runs['shifted']['id']}"
    assert cached and {p: p.stat().st_mtime_ns for p in cached} == cached  # not recomputed
