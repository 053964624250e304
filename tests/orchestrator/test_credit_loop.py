"""Credit scoring's MLOps loop end to end on the real stack: a lender reports what became of
scored applicants, a retrain started through the control plane trains on those outcomes,
passes the gate and is published, and the control plane takes it through a canary, a
promotion and a rollback while POST /v1/credit/scores answers; a canary made to fail is rolled
back by the orchestrator itself, and a broken candidate is refused by the gate.

One Triton (the credit models only) on a copy of the test build, one orchestrator under
uvicorn, SQLite. About a minute, most of it the two trainings.
"""

import json
from collections import Counter

import pytest

from contracts.credit import CREDIT_MODEL, CREDIT_MODELS, FIELD_NAMES, credit_file
from export.__main__ import main as export_main
from export.credit.data import load_taiwan
from export.credit.publish import CREDIT
from export.settings import ExportSettings
from tests.utils.mlops import a_failing_canary_is_rolled_back, loop_stack, move, retrain
from tests.utils.orchestrator import new_key, new_tenant

REPORTED = 300  # outcomes the lender reports; the gate holds out the newest 20 %
CALLS = 80  # distinct test applicants sent, one a call, through each rollout state
MODEL = "credit_scoring"


@pytest.fixture(scope="module")
def stack(built_repository, tmp_path_factory):
    with loop_stack(
        built_repository[0], tmp_path_factory.mktemp("credit_loop"), CREDIT_MODELS
    ) as stack:
        yield stack


@pytest.fixture(scope="module")
def splits():
    return load_taiwan(ExportSettings().credit_dir)


def _applicants(split, start: int, n: int) -> list[dict]:
    rows = split.fields.iloc[start : start + n][list(FIELD_NAMES)]
    return [{k: int(v) for k, v in row.items()} for row in rows.to_dict("records")]


def _score(client, headers, applicants: list[dict]) -> list[dict]:
    answer = client.post("/v1/credit/scores", json={"applicants": applicants}, headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.json()["results"]


def _answers(client, headers, applicants: list[dict]) -> list[tuple[str, float]]:
    """(model_version, probability of default) of each applicant, one call each."""
    answered = [_score(client, headers, [a])[0] for a in applicants]
    return [(a["model_version"], a["probability_of_default"]) for a in answered]


def _versions(client, headers, applicants: list[dict]) -> list[str]:
    return [version for version, _ in _answers(client, headers, applicants)]


def test_outcomes_to_retrain_canary_promotion_and_rollback(stack, splits):
    client, repository, _, root = stack
    tenant = new_tenant(client, "lender")["id"]
    lender = {"X-API-Key": new_key(client, ["credit:score", "credit:read"], tenant)}
    staging = {"X-API-Key": new_key(client, ["credit:score"], tenant, environment="staging")}
    # Reported: training applicants the test build did not train on (it read the first
    # 5,000); the gate scores the test split, which must stay unseen. The traffic after: test
    # applicants.
    train, labels = splits["train"], splits["train"].labels
    reported = _applicants(train, 19_000, REPORTED)
    traffic = _applicants(splits["test"], 0, CALLS)

    # 1. applicants scored by production (version 1), then what became of each reported
    results = _score(client, lender, reported)
    assert {r["model_version"] for r in results} == {"1"}
    for result, label in zip(results, labels[19_000 : 19_000 + REPORTED], strict=True):
        path = f"/v1/credit/scores/{result['id']}/outcome"
        answer = client.put(path, json={"defaulted": bool(label)}, headers=lender)
        assert answer.status_code == 200, answer.text
        assert answer.json()["defaulted"] is bool(label) and answer.json()["outcome_at"]

    # 2. a retrain through the control plane reads them, passes the gate and is published
    run = retrain(client, {"model": MODEL, "publish": True})
    assert run["status"] == "passed", (run["message"], run["log_tail"])
    assert run["published"] == 2 and run["options"]["model"] == MODEL
    card = run["report"]
    assert card["outcomes"]["read"] == REPORTED
    assert card["outcomes"]["held_out"] == REPORTED // 5
    assert card["gate"]["held_out_judged"] is True  # 60 held out, both outcomes among them
    assert (repository / credit_file(2)).is_file()

    # 3. registered (Triton loads it): staging meets it at once, production does not
    assert move(client, "versions", {"model": MODEL, "version": 2}, 201) == {
        2: "candidate", 1: "production",
    }  # fmt: skip
    before = _answers(client, lender, traffic[:20])
    assert {v for v, _ in before} == {"1"}
    assert set(_versions(client, staging, traffic[:10])) == {"2"}

    # 4. a canary at 50 %: a stable share of calls, the same applicant always the same version
    assert move(client, "canary", {"model": MODEL, "version": 2, "percent": 50})[2] == "canary"
    during = _versions(client, lender, traffic)
    share = Counter(during)["2"] / len(traffic)
    assert 0.3 <= share <= 0.7, share
    assert _versions(client, lender, traffic[:10]) == during[:10]

    # 5. promotion: every call meets version 2; drift reads version 2's reference
    assert move(client, "promote", {"model": MODEL}) == {2: "production", 1: "archived"}
    after = _answers(client, lender, traffic[:20])
    assert {v for v, _ in after} == {"2"}
    assert [p for _, p in after] != [p for _, p in before], "is version 2 the same model?"
    drift = client.get("/v1/credit/drift", params={"window": 100}, headers=lender)
    assert drift.status_code == 200, drift.text

    # 6. rollback: version 1 answers the very next call
    assert move(client, "rollback", {"model": MODEL}) == {2: "rolled_back", 1: "production"}
    assert _answers(client, lender, traffic[:20]) == before

    # 7. a canary made to fail live is rolled back by the orchestrator itself
    a_failing_canary_is_rolled_back(
        client, root, CREDIT, lambda: _versions(client, lender, traffic[:40])
    )


def test_an_outcome_is_one_boolean_for_a_scoring_of_ones_own_tenant(stack, splits):
    client = stack[0]
    mine = {"X-API-Key": new_key(client, ["credit:score"], new_tenant(client, "A")["id"])}
    theirs = {"X-API-Key": new_key(client, ["credit:score"], new_tenant(client, "B")["id"])}
    scored = _score(client, mine, _applicants(splits["test"], 0, 1))[0]
    path = f"/v1/credit/scores/{scored['id']}/outcome"
    for body in ({"defaulted": "yes"}, {"defaulted": 1}, {}, {"defaulted": True, "x": 1}):
        assert client.put(path, json=body, headers=mine).status_code == 422, body
    assert client.put(path, json={"defaulted": True}, headers=theirs).status_code == 404
    reader = {"X-API-Key": new_key(client, ["credit:read"], new_tenant(client, "C")["id"])}
    assert client.put(path, json={"defaulted": True}, headers=reader).status_code == 403


def test_a_candidate_trained_on_shuffled_labels_is_refused(stack, monkeypatch, capsys):
    _, repository, database, root = stack
    monkeypatch.setenv("EXPORT_WORK_DIR", str(root / "work_refused"))
    argv = [
        "credit-retrain", "--database-url", database, "--production-repository",
        str(repository), "--output", str(root / "refused"), "--train-limit", "3000",
        "--shuffle-labels",
    ]  # fmt: skip
    assert export_main(argv) == 1
    captured = capsys.readouterr()
    assert "candidate refused" in captured.err and "test AUC" in captured.err
    (card,) = (root / "refused" / CREDIT_MODEL).glob("*/model_card.json")
    assert json.loads(card.read_text())["status"] == "refused"
    assert export_main(["credit-publish", str(card), "--repository", str(repository)]) == 2
