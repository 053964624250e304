"""Several Tritons on one shared repository (issue 16, item 6): registering a version loads it on
every replica, with a report per replica; canary, promotion and rollback reach the traffic of
both; the control plane's load and unload act on both; a Triton started afterwards serves the
same versions from the repository at start.

Two Tritons (triage models only) on a copy of the test build, one orchestrator whose
TRITON_REPLICAS lists both. The candidate is the test build's own files published as version 2
(what is checked here is where versions are served, not what they answer).
"""

import json
import shutil

import httpx
import pytest

from contracts.models import TRIAGE_MODELS
from export.publish import publish
from orchestrator.triton.launcher import TritonServer
from tests.utils.orchestrator import Orchestrator, admin, new_key, new_tenant
from tests.utils.ports import loopback_triton
from tests.utils.triage import TEXTS


@pytest.fixture(scope="module")
def replicas(built_repository, tmp_path_factory):
    root = tmp_path_factory.mktemp("replicas")
    repository = root / "model_repository"
    shutil.copytree(built_repository[0], repository)
    settings = [
        loopback_triton(repository, root / f"triton-{i}", models=TRIAGE_MODELS) for i in range(2)
    ]
    with TritonServer(settings[0]), TritonServer(settings[1]):
        urls = json.dumps([s.grpc_url for s in settings])
        orchestrator = Orchestrator(
            f"sqlite:///{root / 'orchestrator.db'}", settings[0], TRITON_REPLICAS=urls
        ).start()
        try:
            yield orchestrator.client, repository, settings, root
        finally:
            orchestrator.close()


def _same_files_as_version_2(repository, candidates):
    """A passed candidate's layout holding the test build's own files."""
    copies = {
        "ticket_classifier/1/model.onnx": "ticket_classifier/2/model.onnx",
        "ticket_encoder/2/model.onnx": "ticket_encoder/4/model.onnx",
        "ticket_intent/1/model.onnx": "ticket_intent/2/model.onnx",
    }
    for source, target in copies.items():
        (candidates / target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(repository / source, candidates / target)
    card = candidates / "ticket_classifier/2/model_card.json"
    card.write_text(json.dumps({
        "status": "passed",
        "gate": {"passed": True, "reasons": []},
        "versions": {
            "ticket_classifier": "2",
            "ticket_encoder": {"fp32": "3", "int8": "4"},
            "ticket_intent": "2",
        },
    }))  # fmt: skip
    return card


def _inferences(settings, model: str) -> int:
    """How many requests this Triton answered with `model` (its statistics API)."""
    answer = httpx.get(f"http://{settings.http_url}/v2/models/{model}/stats", timeout=10)
    if answer.status_code != 200:
        return 0
    return sum(s["inference_stats"]["success"]["count"] for s in answer.json()["model_stats"])


def _ready(settings, model: str) -> bool:
    answer = httpx.get(f"http://{settings.http_url}/v2/models/{model}/ready", timeout=10)
    return answer.status_code == 200


def _triage(client, headers) -> set[str]:
    versions = set()
    for start in range(0, 240, 60):
        answer = client.post(
            "/v1/triage", json={"texts": TEXTS[start : start + 60]}, headers=headers
        )
        assert answer.status_code == 200, answer.text
        versions |= {r["model_version"] for r in answer.json()["results"]}
    return versions


def _move(client, path, body, status=200) -> dict:
    answer = admin(client, "POST", f"/v1/model/{path}", json=body)
    assert answer.status_code == status, answer.text
    return answer.json()


def test_a_version_reaches_every_replica_and_a_later_one_starts_with_it(replicas):
    client, repository, settings, root = replicas
    publish(_same_files_as_version_2(repository, root / "candidates"), repository)
    headers = {"X-API-Key": new_key(client, ["tickets:write"], new_tenant(client, "r")["id"])}

    registered = _move(client, "versions", {"model": "ticket_triage", "version": 2}, 201)
    assert registered["replicas"] == [
        {"replica": s.grpc_url, "model": "ticket_triage_v2", "ready": True} for s in settings
    ]

    canary = _move(client, "canary", {"model": "ticket_triage", "version": 2, "percent": 50})
    assert [r["ready"] for r in canary["replicas"]] == [True, True]
    assert _triage(client, headers) == {"1", "2"}
    canary_counts = [_inferences(s, "ticket_triage_v2") for s in settings]
    assert all(count > 0 for count in canary_counts), canary_counts  # both took the canary

    _move(client, "promote", {"model": "ticket_triage"})
    base_counts = [_inferences(s, "ticket_triage") for s in settings]
    assert _triage(client, headers) == {"2"}
    after = [_inferences(s, "ticket_triage_v2") for s in settings]
    assert all(a > b for a, b in zip(after, canary_counts, strict=True)), (canary_counts, after)
    assert [_inferences(s, "ticket_triage") for s in settings] == base_counts  # none on 1

    _move(client, "rollback", {"model": "ticket_triage"})
    assert _triage(client, headers) == {"1"}
    assert all(
        _inferences(s, "ticket_triage") > b for s, b in zip(settings, base_counts, strict=True)
    )

    # the control plane's plain unload and load reach every replica, each one reported
    unloaded = _move(client, "unload", {"model": "ticket_triage_v2"})
    assert unloaded["replicas"] == [
        {"replica": settings[1].grpc_url, "result": "ok", "detail": None}
    ]  # the first replica's is the report itself
    assert [_ready(s, "ticket_triage_v2") for s in settings] == [False, False]
    loaded = _move(client, "load", {"model": "ticket_triage_v2"})
    assert [r["result"] for r in loaded["replicas"]] == ["ok"]
    assert [_ready(s, "ticket_triage_v2") for s in settings] == [True, True]

    third = loopback_triton(repository, root / "triton-3", models=TRIAGE_MODELS)
    with TritonServer(third):  # started afterwards, told nothing
        ready = httpx.get(f"http://{third.http_url}/v2/models/ticket_triage_v2/ready", timeout=10)
        assert ready.status_code == 200
        policy = httpx.get(f"http://{third.http_url}/v2/models/ticket_encoder/config", timeout=10)
        assert policy.json()["version_policy"] == {"specific": {"versions": [2, 4]}}
