"""Credit scoring end to end: applicants scored through a real orchestrator and Triton as the
installed ONNX file scores them in process, decided under the tenant's policy, explained, and
stored for audit; every bad field named; on SQLite and PostgreSQL."""

import time

import numpy as np
import pytest

from contracts.credit import CREDIT_FILE, FEATURES, FIELD_NAMES, score
from export.credit.data import load_taiwan
from export.credit.onnx_files import outputs
from export.settings import ExportSettings
from tests.utils.orchestrator import error_of, new_key, new_tenant

SCOPES = ["credit:score", "credit:read"]


@pytest.fixture(scope="module")
def test_split():
    return load_taiwan(ExportSettings().credit_dir)["test"]


@pytest.fixture(scope="module")
def lender(api):
    tenant = new_tenant(api, "lender A")["id"]
    return {
        "score": {"X-API-Key": new_key(api, SCOPES, tenant)},
        "admin": {"X-API-Key": new_key(api, ["admin", "credit:read"], tenant)},
    }


def _applicants(split, n: int, start: int = 0) -> list[dict]:
    rows = split.fields.iloc[start : start + n][list(FIELD_NAMES)]
    return [{k: int(v) for k, v in row.items()} for row in rows.to_dict("records")]


def _score(api, headers, applicants):
    return api.post("/v1/credit/scores", json={"applicants": applicants}, headers=headers)


def test_applicants_are_scored_as_the_installed_model_scores_them(
    api, lender, test_split, built_repository
):
    applicants = _applicants(test_split, 200)
    answer = _score(api, lender["score"], applicants)
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    expected = outputs(built_repository[0] / CREDIT_FILE, test_split.head(200).features)
    probabilities = np.array([r["probability_of_default"] for r in results])
    assert np.allclose(probabilities, expected["probability"][:, 0], atol=1e-5)
    policy = api.get("/v1/credit/policy", headers=lender["score"]).json()
    assert policy["default"] and (policy["approve_below"], policy["decline_from"]) == (0.1, 0.5)
    for result, applicant, contributions in zip(
        results, applicants, expected["contributions"], strict=True
    ):
        p = result["probability_of_default"]
        assert result["score"] == score(p) and result["model_version"] == "1"
        assert result["decision"] == ("approve" if p < 0.1 else "decline" if p >= 0.5 else "review")
        top = [FEATURES[i] for i in np.argsort(-contributions)[:3] if contributions[i] > 0]
        assert [r["field"] for r in result["reasons"]] == top
        for reason in result["reasons"]:
            assert reason["value"] == applicant[reason["field"]] and reason["contribution"] > 0
    assert {r["decision"] for r in results} == {"approve", "review", "decline"}

    stored = api.get(f"/v1/credit/scores/{results[0]['id']}", headers=lender["score"]).json()
    assert stored["applicant"] == applicants[0]  # sex and marriage kept for the fairness report
    assert stored["probability_of_default"] == results[0]["probability_of_default"]
    declined = api.get("/v1/credit/scores", params={"decision": "decline", "limit": 200},
                       headers=lender["score"]).json()["data"]  # fmt: skip
    assert {d["id"] for d in declined} == {r["id"] for r in results if r["decision"] == "decline"}
    other = {"X-API-Key": new_key(api, SCOPES, "lender B")}
    assert api.get(f"/v1/credit/scores/{results[0]['id']}", headers=other).status_code == 404


def test_a_thousand_applicants_in_one_call(api, lender, test_split):
    started = time.monotonic()
    answer = _score(api, lender["score"], _applicants(test_split, 1000, start=1000))
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["results"]) == 1000
    assert time.monotonic() - started < 30
    refused = _score(api, lender["score"], _applicants(test_split, 1001))
    assert refused.status_code == 422 and error_of(refused)["param"] == "applicants"


def test_each_bad_field_is_named(api, lender, test_split):
    first, second = _applicants(test_split, 2)
    first |= {"age": 7, "pay_0": "late"}
    del second["limit_bal"]
    second |= {"sex": True, "income": 5}
    answer = _score(api, lender["score"], [first, second])
    assert answer.status_code == 422
    error = answer.json()["error"]
    named = {e["param"] for e in error["errors"]}
    assert named == {
        "applicants.0.age", "applicants.0.pay_0", "applicants.1.limit_bal",
        "applicants.1.sex", "applicants.1.income",
    }  # fmt: skip
    assert error["message"].startswith("applicants.0.age: ") and "4 more" in error["message"]
    assert _score(api, lender["score"], []).status_code == 422


def test_the_tenant_sets_its_costs_and_the_decisions_follow(api, lender, test_split):
    costs = {"cost_accept_bad": 4.0, "cost_refuse_good": 1.0, "cost_review": 2.0}
    refused = api.put("/v1/credit/policy", json=costs, headers=lender["score"])
    assert refused.status_code == 403  # a tenant admin sets it
    policy = api.put("/v1/credit/policy", json=costs, headers=lender["admin"]).json()
    # a review costing more than the break-even loss never pays: no review band
    assert policy["approve_below"] == policy["decline_from"] == pytest.approx(0.2)
    results = _score(api, lender["score"], _applicants(test_split, 100)).json()["results"]
    assert {r["decision"] for r in results} == {"approve", "decline"}
    for result in results:
        declined = result["probability_of_default"] >= 0.2
        assert result["decision"] == ("decline" if declined else "approve")
    bad = api.put(
        "/v1/credit/policy", json={**costs, "cost_accept_bad": 0}, headers=lender["admin"]
    )
    assert bad.status_code == 422


def test_scopes_are_enforced(api, test_split):
    reader = {"X-API-Key": new_key(api, ["credit:read"], "lender C")}
    assert _score(api, reader, _applicants(test_split, 1)).status_code == 403
    scorer = {"X-API-Key": new_key(api, ["credit:score"], "lender D")}
    assert api.get("/v1/credit/scores", headers=scorer).status_code == 403


def test_drift_flags_a_shifted_population_and_sets_the_gauges(api, test_split):
    calm = {"X-API-Key": new_key(api, SCOPES, "calm lender")}
    shifted = {"X-API-Key": new_key(api, SCOPES, "shifted lender")}
    assert api.get("/v1/credit/drift", headers=calm).status_code == 409  # no scorings yet
    # every 20th test applicant: the file is ordered in runs (IDs 26,001-26,300 alone are
    # far older than the training split), so a run of rows would be a shifted population
    sample = test_split.take(np.arange(0, len(test_split), 20))
    applicants = _applicants(sample, len(sample))
    assert _score(api, calm, applicants).status_code == 200
    # the same applicants a month later: every payment a month later, limits cut by half
    later = [
        a | {"pay_0": min(a["pay_0"] + 2, 9), "limit_bal": max(a["limit_bal"] // 2, 1)}
        for a in applicants
    ]
    assert _score(api, shifted, later).status_code == 200

    steady = api.get("/v1/credit/drift", params={"window": 300}, headers=calm).json()
    assert steady["window"] == 300
    assert steady["level"] != "critical"
    for name in ("pay_0", "limit_bal", "probability"):
        assert steady["signals"][name]["level"] == "ok", steady
    moved = api.get("/v1/credit/drift", params={"window": 300}, headers=shifted).json()
    assert moved["level"] == "critical"
    assert {"pay_0", "limit_bal", "probability"} <= set(moved["drifted"])
    assert moved["signals"]["pay_0"]["psi"] >= 0.25
    exposition = api.get("/metrics").text
    assert 'support_credit_psi{feature="pay_0",tenant="shifted lender"}' in exposition
