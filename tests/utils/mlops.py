"""What the MLOps loop tests share: a Triton and an orchestrator of their own on a copy of the
test build, and, through the control plane, moving a version between states, running a
retrain to its end, and renumbering a one-step candidate (to publish a second copy)."""

import contextlib
import json
import shutil
from pathlib import Path

from orchestrator.triton.launcher import TritonServer
from tests.utils.orchestrator import Orchestrator, admin, wait_until
from tests.utils.ports import loopback_triton


@contextlib.contextmanager
def loop_stack(built: Path, root: Path, models: tuple[str, ...]):
    """(client, repository, database URL, root): Triton serving `models` from a copy of the
    test build under `root` (publishing changes it), and an orchestrator whose retrains write
    there, whose canary watch judges every second after 20 calls of each version, and whose
    rate limit lets one client send as fast as it can."""
    repository = root / "model_repository"
    shutil.copytree(built, repository)
    settings = loopback_triton(repository, root / "triton", models=models)
    database = f"sqlite:///{root / 'orchestrator.db'}"
    env = {
        "ORCHESTRATOR_CANARY_CHECK_S": "1",
        "ORCHESTRATOR_CANARY_MIN_CALLS": "20",
        "ORCHESTRATOR_RATE_LIMIT_PER_MINUTE": "60000",
        "ORCHESTRATOR_RATE_LIMIT_BURST": "1000",
        "EXPORT_MODEL_REPOSITORY": str(repository),
        "EXPORT_CANDIDATES_DIR": str(root / "candidates"),
        "EXPORT_WORK_DIR": str(root / "work"),
    }
    with TritonServer(settings):
        orchestrator = Orchestrator(database, settings, **env).start()
        try:
            yield orchestrator.client, repository, database, root
        finally:
            orchestrator.close()


def move(client, path: str, body: dict, status: int = 200) -> dict:
    """POST /v1/model/<path> (versions, canary, promote, rollback): each version's state."""
    answer = admin(client, "POST", f"/v1/model/{path}", json=body)
    assert answer.status_code == status, answer.text
    return {v["version"]: v["state"] for v in answer.json()["data"]}


def retrain(client, body: dict, timeout_s: float = 300) -> dict:
    """A retrain run started through the control plane, once it has ended."""
    started = admin(client, "POST", "/v1/model/retrain", json=body)
    assert started.status_code == 202, started.text
    run_id = started.json()["id"]

    def ended():
        run = admin(client, "GET", f"/v1/model/retrain/{run_id}").json()
        return run if run["status"] in ("passed", "refused", "failed") else None

    return wait_until(ended, timeout_s, interval_s=1, what=f"the {body.get('model')} retrain")


def renumbered(candidates: Path, step: str, version: int, new: int) -> Path:
    """One-step candidate `version`'s files as candidate `new`, its card too."""
    source, target = candidates / step / str(version), candidates / step / str(new)
    shutil.copytree(source, target)
    card = json.loads((target / "model_card.json").read_text())
    card["version"] = new
    (target / "model_card.json").write_text(json.dumps(card))
    return target / "model_card.json"


def a_failing_canary_is_rolled_back(client, stack_root: Path, spec, send) -> None:
    """Candidate 2 of the one-step model `spec` (export/step_publish.py) renumbered 3,
    published, registered and canaried at 50 %, then its ensemble unloaded: the orchestrator
    rolls the canary back by itself while `send()` (a batch of traffic, the versions that
    answered) gets production's answers throughout; the abort is audited and counted."""
    from export.__main__ import main as export_main

    repository = stack_root / "model_repository"
    third = renumbered(stack_root / "candidates", spec.step, 2, 3)
    assert export_main([f"{spec.noun}-publish", str(third), "--repository", str(repository)]) == 0
    move(client, "versions", {"model": spec.ensemble, "version": 3}, 201)
    move(client, "canary", {"model": spec.ensemble, "version": 3, "percent": 50})
    unloaded = admin(client, "POST", "/v1/model/unload", json={"model": spec.model_name(3)})
    assert unloaded.status_code == 200, unloaded.text

    def aborted():
        assert set(send()) == {"1"}  # answered by production
        listed = admin(client, "GET", "/v1/model/versions", params={"model": spec.ensemble})
        return {v["version"]: v["state"] for v in listed.json()["data"]}[3] == "rolled_back"

    wait_until(aborted, 60, interval_s=0.5, what="the canary's automatic rollback")
    entries = admin(client, "GET", "/v1/model/audit", params={"limit": 200}).json()["data"]
    abort = next(e for e in entries if e["action"] == "canary_abort")
    assert abort["target"] == spec.ensemble and abort["request"]["version"] == 3
    counted = f'support_canary_aborts_total{{model="{spec.ensemble}"}} 1.0'
    assert counted in client.get("/metrics").text
