"""The monitoring routes and the drift gauges on /metrics, over stored runs; in process,
without Triton (the pass itself: tests/orchestrator/services/drift/test_drift_pass.py)."""

import pytest
from fastapi.testclient import TestClient

from orchestrator.app import create_app
from orchestrator.db.models import DriftRun
from orchestrator.settings import DriftSettings, OrchestratorSettings, TritonSettings
from tests.utils.drift import add_tenant
from tests.utils.orchestrator import ADMIN_KEY, error_of, new_key
from tests.utils.ports import free_ports

ADMIN = {"X-API-Key": ADMIN_KEY}
SIGNAL = {"method": "K-S p_value", "score": 0.2, "threshold": 0.01, "drifted": False}


@pytest.fixture(scope="module")
def client(database_url, tmp_path_factory):
    reports = tmp_path_factory.mktemp("reports")
    settings = OrchestratorSettings(
        database_url=database_url, admin_key=ADMIN_KEY, worker_in_process=False
    )
    grpc, http = free_ports(2)  # nothing listens there: no call here reaches Triton
    app = create_app(
        settings, TritonSettings(grpc_port=grpc, http_port=http), DriftSettings(reports_dir=reports)
    )
    with TestClient(app) as client:
        yield client


def store(client, pass_id: str, tenant_id: int | None, share: float, override: float | None):
    with client.app.state.sessions() as session:
        run = DriftRun(
            pass_id=pass_id,
            tenant_id=tenant_id,
            model_version="1",
            reference_size=500,
            current_size=120,
            drift_share=share,
            prediction_drift_score=share / 2,
            embedding_drift_score=0.001,
            override_rate=override,
            drifted=share >= 0.4,
            columns={"text_length": SIGNAL},
            report_file=f"{pass_id}-{tenant_id or 'all'}.html",
            seconds=1.5,
        )
        session.add(run)
        session.commit()
        return run.id


def test_before_any_pass_the_summary_is_empty(client):
    answer = client.get("/v1/monitoring/drift", headers=ADMIN)
    assert answer.status_code == 200
    assert answer.json() == {
        "pass_id": None,
        "created_at": None,
        "min_sample": 50,
        "runs": [],
        "skipped": [],
    }


def test_the_latest_pass_its_report_and_its_gauges(client):
    with client.app.state.sessions() as session:
        tenant_id, _ = add_tenant(session, "monitored")
    store(client, "a" * 32, None, 0.8, None)  # an older pass
    run_all = store(client, "b" * 32, None, 0.2, None)
    run_tenant = store(client, "b" * 32, tenant_id, 0.6, 0.25)
    reports = client.app.state.drift_settings.reports_dir
    (reports / f"{'b' * 32}-{tenant_id}.html").write_text("<!DOCTYPE html><p>report</p>")

    summary = client.get("/v1/monitoring/drift", headers=ADMIN).json()
    assert summary["pass_id"] == "b" * 32
    assert [(r["tenant"], r["id"]) for r in summary["runs"]] == [
        ("all", run_all),
        ("monitored", run_tenant),
    ]
    tenant_run = summary["runs"][1]
    assert tenant_run["drifted"] and tenant_run["override_rate"] == 0.25
    assert tenant_run["signals"] == {"text_length": SIGNAL}
    assert tenant_run["report_url"] == f"/v1/monitoring/reports/{run_tenant}"

    report = client.get(tenant_run["report_url"], headers=ADMIN)
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/html")
    assert report.text == "<!DOCTYPE html><p>report</p>"
    gone = client.get(f"/v1/monitoring/reports/{run_all}", headers=ADMIN)  # file never written
    assert gone.status_code == 404 and error_of(gone)["param"] == "report_id"

    metrics = client.get("/metrics").text
    assert 'support_drift_share{tenant="monitored"} 0.6' in metrics
    assert 'support_drift_share{tenant="all"} 0.2' in metrics
    assert 'support_prediction_drift_score{tenant="monitored"} 0.3' in metrics
    assert 'support_override_rate{tenant="monitored"} 0.25' in metrics
    assert 'support_override_rate{tenant="all"}' not in metrics  # nobody corrected


@pytest.mark.parametrize("report_id", ["0", "-1", str(2**31), str(2**63), str(2**64), "abc", "1.5"])
def test_report_ids_out_of_range_or_not_numbers_get_422(client, report_id):
    answer = client.get(f"/v1/monitoring/reports/{report_id}", headers=ADMIN)
    assert answer.status_code == 422
    assert error_of(answer)["param"] == "report_id"


def test_an_unknown_report_is_404(client):
    answer = client.get("/v1/monitoring/reports/999999", headers=ADMIN)
    assert answer.status_code == 404 and error_of(answer)["code"] == "not_found"


def test_monitoring_is_for_platform_admins_only(client):
    tenant_admin = {"X-API-Key": new_key(client, ["admin"], "monitoring tenant")}
    for path in ("/v1/monitoring/drift", "/v1/monitoring/reports/1"):
        assert client.get(path, headers=tenant_admin).status_code == 403
        assert client.get(path).status_code == 401
