"""The MLOps loop end to end on the real stack: agents' corrections become a snapshot, a retrain
on a small recipe passes the gate, `export publish` puts it beside production, and the control
plane takes it through a canary, a promotion and a rollback while /v1/triage answers.

One Triton (triage models only) on a copy of the test build, one orchestrator under uvicorn
with its worker, SQLite. About 3 minutes, most of it the retrain.
"""

import json
import shutil
from collections import Counter

import pytest

from contracts.models import TRIAGE_MODELS
from export.__main__ import main as export_main
from export.data import load_banking77
from export.dataset import latest_snapshot, read_snapshot
from export.settings import ExportSettings
from orchestrator.triton.launcher import TritonServer
from tests.utils.mlops import move
from tests.utils.orchestrator import Orchestrator, admin, new_key, new_tenant, wait_until
from tests.utils.ports import loopback_triton

# A confusable pair: texts between the two, which agents relabel to the one the model missed.
PAIR = ("card_arrival", "card_delivery_estimate")
TICKETS = [
    ("New card", "When will the card you sent me get here?"),
    ("Card delivery", "How long does it take for a new card to be delivered?"),
    ("Still waiting", "My card has not come yet, when should I expect it?"),
    ("Card in the post", "Is my card on its way? It has been a week."),
    ("Delivery time", "What is the usual delivery time for cards to my country?"),
    ("Tracking", "Can I track the card you posted to me?"),
    ("No card yet", "I ordered a card ten days ago and nothing arrived."),
    ("Card ETA", "Give me an estimate of when my card arrives."),
    ("Shipping", "How many business days is card shipping?"),
    ("Waiting for card", "I'm still waiting for my card, is that normal?"),
]
# The small recipe: `make up`'s quick build (70 texts per intent, 1 epoch), which beats the test
# build (16 per intent) on every intent; 40 texts per intent left one intent at 0 % recall.
# Recall is gated on 10 frozen test texts per intent, so one text is 10 points: the drop
# allowed is 3 texts of 10 here, against 5 points on the full split in production use.
RECIPE = ["--epochs", "1", "--train-per-label", "70", "--test-limit", "770"]
GATE = ["--max-recall-drop", "30"]
CANARY_PERCENT = 30


@pytest.fixture(scope="module")
def stack(built_repository, tmp_path_factory):
    """A Triton and an orchestrator of their own: publishing changes the repository."""
    root = tmp_path_factory.mktemp("loop")
    repository = root / "model_repository"
    shutil.copytree(built_repository[0], repository)
    settings = loopback_triton(repository, root / "triton", models=TRIAGE_MODELS)
    database = f"sqlite:///{root / 'orchestrator.db'}"
    with TritonServer(settings):
        # the canary's watch judges every second, after 20 calls of each version
        watch = {"ORCHESTRATOR_CANARY_CHECK_S": "1", "ORCHESTRATOR_CANARY_MIN_CALLS": "20"}
        orchestrator = Orchestrator(database, settings, **watch).start()
        try:
            yield orchestrator.client, repository, database, root
        finally:
            orchestrator.close()


def _corrections(client) -> int:
    """Tickets through the worker, each corrected to the member of PAIR it was not given."""
    key = {
        "X-API-Key": new_key(
            client, ["tickets:write", "tickets:read"], new_tenant(client, "loop")["id"]
        )
    }
    ids = []
    for subject, body in TICKETS:
        posted = client.post("/v1/tickets", json={"subject": subject, "body": body}, headers=key)
        assert posted.status_code == 202, posted.text
        ids.append(posted.json()["id"])

    def triaged(ticket_id):
        ticket = client.get(f"/v1/tickets/{ticket_id}", headers=key).json()
        return ticket["triage"]

    for ticket_id in ids:
        predicted = wait_until(lambda i=ticket_id: triaged(i), 120, what="triage")
        assert predicted["model_version"] == "1"
        label = PAIR[1] if predicted["intent"] == PAIR[0] else PAIR[0]
        corrected = client.patch(f"/v1/tickets/{ticket_id}", json={"intent": label}, headers=key)
        assert corrected.status_code == 200, corrected.text
    return len(ids)


def _versions(client, texts: list[str], headers: dict) -> list[tuple[str, str]]:
    """(model_version, intent) of each text through /v1/triage, 60 texts a call."""
    answered = []
    for start in range(0, len(texts), 60):
        batch = texts[start : start + 60]
        answer = client.post("/v1/triage", json={"texts": batch}, headers=headers)
        assert answer.status_code == 200, answer.text
        answered += [(r["model_version"], r["intent"]) for r in answer.json()["results"]]
    return answered


def test_corrections_to_canary_promotion_and_rollback(stack, monkeypatch, capsys):
    client, repository, database, root = stack
    corrected = _corrections(client)

    # 1. the snapshot holds the corrections, from the orchestrator's database
    datasets = root / "datasets"
    assert export_main(["dataset", "--database-url", database, "--output", str(datasets)]) == 0
    _, manifest = read_snapshot(latest_snapshot(datasets))
    assert len(manifest["corrections_used"]) == corrected

    # 2. a retrain on the small recipe passes the gate against production (version 1)
    monkeypatch.setenv("EXPORT_WORK_DIR", str(root / "work"))
    monkeypatch.setenv("DATABASE_URL", database)
    candidates = root / "candidates"
    monkeypatch.setenv("EXPORT_CANDIDATES_DIR", str(candidates))  # where publish finds it
    argv = ["retrain", "--production-repository", str(repository), "--output", str(candidates)]
    code = export_main([*argv, "--snapshot", str(latest_snapshot(datasets)), *RECIPE, *GATE])
    printed = capsys.readouterr().out
    assert code == 0, printed[-3000:]
    assert "gate: PASSED" in printed

    # 3. published beside production: nothing is routed to it yet
    assert export_main(["publish", "--repository", str(repository)]) == 0
    assert "published triage version 2" in capsys.readouterr().out
    texts = load_banking77(ExportSettings().banking77_dir).test.spread(300).texts
    assert len(set(texts)) == 300
    tenant = new_tenant(client, "traffic")["id"]
    production = {"X-API-Key": new_key(client, ["tickets:write"], tenant)}
    staging = {"X-API-Key": new_key(client, ["tickets:write"], tenant, environment="staging")}
    before = _versions(client, texts, production)
    assert {v for v, _ in before} == {"1"}

    # 4. registered (Triton loads it), then a canary at 30 %
    assert move(client, "versions", {"model": "ticket_triage", "version": 2}, 201) == {
        2: "candidate", 1: "production",
    }  # fmt: skip
    assert {v for v, _ in _versions(client, texts[:60], production)} == {"1"}
    assert {v for v, _ in _versions(client, texts[:60], staging)} == {"2"}  # staging: at once
    body = {"model": "ticket_triage", "version": 2, "percent": CANARY_PERCENT}
    assert move(client, "canary", body)[2] == "canary"
    during = _versions(client, texts, production)
    share = Counter(v for v, _ in during)["2"] / len(texts)
    assert 0.20 <= share <= 0.40, share
    repeated = [_versions(client, [texts[i]], production)[0][0] for i in range(5) for _ in range(3)]
    assert repeated == [during[i][0] for i in range(5) for _ in range(3)]  # sticky per text

    # 5. promotion: every text meets version 2, a model that answers differently
    assert move(client, "promote", {"model": "ticket_triage"}) == {2: "production", 1: "archived"}
    after = _versions(client, texts, production)
    assert {v for v, _ in after} == {"2"}
    changed = sum(a != b for (_, a), (_, b) in zip(before, after, strict=True))
    assert changed > 0, "version 2 answered exactly as version 1: is it the same model?"

    # 6. rollback: the previous version answers the very next request, as before
    assert move(client, "rollback", {"model": "ticket_triage"}) == {
        2: "rolled_back",
        1: "production",
    }
    assert _versions(client, texts, production) == before

    # 7. a canary made to fail live is rolled back by the orchestrator itself. A second
    # candidate: the same files under the next numbers (what matters is that it fails).
    second = _renumbered(candidates, 2, 3)
    assert export_main(["publish", str(second), "--repository", str(repository)]) == 0
    move(client, "versions", {"model": "ticket_triage", "version": 3}, 201)
    move(client, "canary", {"model": "ticket_triage", "version": 3, "percent": 50})
    unloaded = admin(client, "POST", "/v1/model/unload", json={"model": "ticket_triage_v3"})
    assert unloaded.status_code == 200, unloaded.text

    def aborted():
        answered = _versions(client, texts[:120], production)  # every call answers 200
        assert {v for v, _ in answered} == {"1"}  # the canary's share answered by production
        listed = admin(client, "GET", "/v1/model/versions", params={"model": "ticket_triage"})
        return {v["version"]: v["state"] for v in listed.json()["data"]}[3] == "rolled_back"

    wait_until(aborted, 60, interval_s=0.5, what="the canary's automatic rollback")
    entries = admin(client, "GET", "/v1/model/audit", params={"limit": 200}).json()["data"]
    abort = next(e for e in entries if e["action"] == "canary_abort")
    assert abort["key_id"] is None and abort["request"]["version"] == 3
    assert abort["request"]["reasons"][0].startswith("error rate 100.0%")
    assert 'support_canary_aborts_total{model="ticket_triage"} 1.0' in client.get("/metrics").text


def _renumbered(candidates, version: int, new: int):
    """Candidate `version`'s files as classifier (and ticket_intent) `new` and encoder 2 * new:
    its card too."""
    card = json.loads((candidates / f"ticket_classifier/{version}/model_card.json").read_text())
    encoder = int(card["versions"]["ticket_encoder"]["int8"])
    copies = {
        f"ticket_classifier/{version}/model.onnx": f"ticket_classifier/{new}/model.onnx",
        f"ticket_encoder/{encoder}/model.onnx": f"ticket_encoder/{2 * new}/model.onnx",
        f"ticket_intent/{version}/model.onnx": f"ticket_intent/{new}/model.onnx",
    }
    for source, target in copies.items():
        (candidates / target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(candidates / source, candidates / target)
    card["versions"] = {
        "ticket_classifier": str(new),
        "ticket_encoder": {"fp32": str(2 * new - 1), "int8": str(2 * new)},
        "ticket_intent": str(new),
    }
    path = candidates / f"ticket_classifier/{new}/model_card.json"
    path.write_text(json.dumps(card))
    return path
