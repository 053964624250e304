"""What the MLOps loop tests do through the control plane: move a version between states,
run a retrain to its end, and renumber a one-step candidate (to publish a second copy)."""

import json
import shutil
from pathlib import Path

from tests.utils.orchestrator import admin, wait_until


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
