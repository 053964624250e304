"""Retraining through the API: `POST /v1/model/retrain` runs `export dataset`, `export retrain`
and (asked) `export publish` as a job with progress, one at a time, audited; its end is
passed, refused or failed with the report and the output's last lines. With a stand-in for
`python -m export` (tests/models/fake_export.py); the real commands are tested in
tests/export and, through the loop, tests/orchestrator/test_mlops_loop.py."""

import json
import sys
from pathlib import Path

import pytest

from orchestrator.db.models import RetrainRun
from orchestrator.services.retrain_runs import HOST
from tests.utils.feedback import app_without_triton
from tests.utils.orchestrator import ADMIN_KEY, error_of, new_key, new_tenant, wait_until

ADMIN = {"X-API-Key": ADMIN_KEY}
FAKE = Path(__file__).parents[2] / "models" / "fake_export.py"
RECIPE = {"epochs": 1, "train_per_label": 8, "test_limit": 200}


@pytest.fixture
def client(database_url, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_EXPORT_DIR", str(tmp_path))
    with app_without_triton(database_url) as client:
        client.app.state.retrain_runs.command = [sys.executable, str(FAKE)]
        yield client


def _finished(client, run_id: int) -> dict:
    def done():
        run = client.get(f"/v1/model/retrain/{run_id}", headers=ADMIN).json()
        return run if run["status"] not in ("queued", "running") else None

    return wait_until(done, 30, interval_s=0.1, what=f"retrain run {run_id}")


def _calls(tmp_path) -> list[list[str]]:
    return [json.loads(line) for line in (tmp_path / "argv.jsonl").read_text().splitlines()]


def test_a_run_snapshots_retrains_and_publishes_with_progress(client, tmp_path, database_url):
    started = client.post("/v1/model/retrain", json={**RECIPE, "publish": True}, headers=ADMIN)
    assert started.status_code == 202, started.text
    assert started.json()["status"] == "queued"
    run = _finished(client, started.json()["id"])
    assert (run["status"], run["step"], run["steps"]) == ("passed", 7, 7)
    assert run["message"] == "passed the gate; published as version 2"
    assert run["published"] == 2 and run["report"]["status"] == "passed"
    assert run["report_path"] == str(tmp_path / "card.json")
    assert "== 7/7 step 7" in run["log_tail"] and "\r" not in run["log_tail"]
    assert run["started_at"] and run["finished_at"]
    dataset, retrain, publish = _calls(tmp_path)
    assert dataset == ["dataset", "--database-url", database_url]
    assert retrain == ["retrain", "--epochs", "1", "--train-per-label", "8", "--test-limit", "200"]
    assert publish == ["publish", str(tmp_path / "card.json")]
    listed = client.get("/v1/model/retrain", headers=ADMIN).json()["data"]
    assert listed[0]["id"] == run["id"]
    audit = client.get("/v1/model/audit", headers=ADMIN).json()["data"]
    assert any(e["action"] == "retrain" and e["request"]["run"] == run["id"] for e in audit)


def test_an_xray_run_retrains_on_confirmations_and_publishes(client, tmp_path, database_url):
    body = {"model": "xray_diagnosis", "epochs": 3, "publish": True}
    started = client.post("/v1/model/retrain", json=body, headers=ADMIN)
    assert started.status_code == 202, started.text
    run = _finished(client, started.json()["id"])
    assert (run["status"], run["published"]) == ("passed", 2)
    assert run["options"]["model"] == "xray_diagnosis"
    retrain, publish = _calls(tmp_path)  # no snapshot: xray-retrain reads the database
    assert retrain == ["xray-retrain", "--database-url", database_url, "--epochs", "3"]
    assert publish == ["xray-publish", str(tmp_path / "card.json")]
    audit = client.get("/v1/model/audit", headers=ADMIN).json()["data"]
    assert any(e["action"] == "retrain" and e["target"] == "xray_diagnosis" for e in audit)


def test_a_refused_candidate_and_a_failed_command_say_so(client, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_EXPORT_GATE", "refuse")
    run = _finished(client, client.post("/v1/model/retrain", json={}, headers=ADMIN).json()["id"])
    assert run["status"] == "refused" and run["report"]["gate"]["reasons"] == ["accuracy fell"]
    assert [c[0] for c in _calls(tmp_path)] == ["dataset", "retrain"]  # never published

    monkeypatch.setenv("FAKE_EXPORT_FAIL", "dataset")
    run = _finished(client, client.post("/v1/model/retrain", json={}, headers=ADMIN).json()["id"])
    assert (run["status"], run["message"]) == ("failed", "export dataset failed")
    assert "dataset cannot run here" in run["log_tail"]


def test_one_run_at_a_time(client, tmp_path, monkeypatch):
    hold = tmp_path / "go"
    monkeypatch.setenv("FAKE_EXPORT_HOLD", str(hold))
    first = client.post("/v1/model/retrain", json={}, headers=ADMIN).json()["id"]
    second = client.post("/v1/model/retrain", json={}, headers=ADMIN)
    assert second.status_code == 409 and error_of(second)["code"] == "retrain_running"
    hold.touch()
    assert _finished(client, first)["status"] == "passed"
    third = client.post("/v1/model/retrain", json={}, headers=ADMIN)
    assert third.status_code == 202


def test_a_run_left_by_a_stopped_orchestrator_is_failed_at_start(client):
    runs = client.app.state.retrain_runs
    with client.app.state.sessions() as session:
        session.add(RetrainRun(key_id=1, status="running", options={}, host=HOST))
        session.commit()
    assert runs.recover() == 1
    latest = client.get("/v1/model/retrain", headers=ADMIN).json()["data"][0]
    assert latest["status"] == "failed"
    assert latest["message"] == "the orchestrator stopped during the run"


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/v1/model/retrain", {"epochs": 0}, 422),
        ("POST", "/v1/model/retrain", {"epochs": 1, "shuffle": True}, 422),
        ("POST", "/v1/model/retrain", {"test_limit": 10}, 422),  # fewer than the intents
        ("POST", "/v1/model/retrain", {"epochs": 21}, 422),  # triage's at most 20
        ("POST", "/v1/model/retrain", {"model": "xray_diagnosis", "train_per_label": 8}, 422),
        ("POST", "/v1/model/retrain", {"model": "xray_diagnosis", "epochs": 61}, 422),
        ("POST", "/v1/model/retrain", {"model": "ticket_triage_v2"}, 422),
        ("GET", f"/v1/model/retrain/{2**63}", None, 422),
        ("GET", "/v1/model/retrain/999999", None, 404),
    ],
)
def test_bad_requests_are_refused_clearly(client, method, path, body, status):
    answer = client.request(method, path, json=body, headers=ADMIN)
    assert answer.status_code == status, answer.text
    error_of(answer)


def test_only_platform_admins_retrain(client):
    tenant_admin = {"X-API-Key": new_key(client, ["admin"], new_tenant(client, "t")["id"])}
    assert client.post("/v1/model/retrain", json={}, headers=tenant_admin).status_code == 403
    assert client.get("/v1/model/retrain", headers=tenant_admin).status_code == 403
