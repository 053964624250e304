"""The x-ray's MLOps loop end to end on the real stack: clinicians confirm diagnoses, a retrain
started through the control plane trains on them, passes the gate and is published, and the
control plane takes it through a canary, a promotion and a rollback while POST /v1/diagnoses
answers; a canary made to fail is rolled back by the orchestrator itself, and a broken
candidate is refused by the gate.

One Triton (the x-ray models only) on a copy of the test build, one orchestrator under uvicorn,
SQLite. About 2 minutes, most of it the two trainings.
"""

import json
from collections import Counter

import pytest

from contracts.images import png_bytes
from contracts.xray import LABELS, XRAY_CLASSIFIER, XRAY_MODELS
from export.__main__ import main as export_main
from export.settings import ExportSettings
from export.xray.data import load_pneumoniamnist
from export.xray.publish import XRAY
from tests.utils.mlops import a_failing_canary_is_rolled_back, loop_stack, move, retrain
from tests.utils.orchestrator import new_key, new_tenant

CONFIRMED = 60  # diagnoses a clinician confirms; the gate holds out the newest 20 %
IMAGES = 80  # distinct test images sent through each rollout state
MODEL = "xray_diagnosis"


@pytest.fixture(scope="module")
def stack(built_repository, tmp_path_factory):
    with loop_stack(
        built_repository[0], tmp_path_factory.mktemp("xray_loop"), XRAY_MODELS
    ) as stack:
        yield stack


@pytest.fixture(scope="module")
def splits():
    return load_pneumoniamnist(ExportSettings().pneumoniamnist_dir)


def _diagnose(client, headers, image: bytes) -> dict:
    answer = client.post(
        "/v1/diagnoses", content=image, headers={**headers, "Content-Type": "image/png"}
    )
    assert answer.status_code == 201, answer.text
    return answer.json()


def _versions(client, headers, images: list[bytes]) -> list[str]:
    return [version for version, _ in _answers(client, headers, images)]


def _answers(client, headers, images: list[bytes]) -> list[tuple[str, float]]:
    """(model_version, probability) of each image."""
    answered = [_diagnose(client, headers, image) for image in images]
    return [(a["model_version"], a["probability"]) for a in answered]


def test_confirmations_to_retrain_canary_promotion_and_rollback(stack, splits):
    client, repository, _, root = stack
    tenant = new_tenant(client, "clinic")["id"]
    clinician = {"X-API-Key": new_key(client, ["diagnoses:write", "diagnoses:read"], tenant)}
    staging = {"X-API-Key": new_key(client, ["diagnoses:write"], tenant, environment="staging")}
    # Confirmed: training images (the gate scores the test split, which must stay unseen);
    # the traffic after: test images
    confirmed = [png_bytes(pixels) for pixels in splits["train"].images[-CONFIRMED:]]
    traffic = [png_bytes(pixels) for pixels in splits["test"].images[:IMAGES]]

    # 1. diagnoses by production (version 1), each confirmed by a clinician
    for image, label in zip(confirmed, splits["train"].labels[-CONFIRMED:], strict=True):
        diagnosis = _diagnose(client, clinician, image)
        assert diagnosis["model_version"] == "1"
        confirmed = client.patch(
            f"/v1/diagnoses/{diagnosis['id']}",
            json={"confirmed_label": LABELS[int(label)]},
            headers=clinician,
        )
        assert confirmed.status_code == 200, confirmed.text

    # 2. a retrain through the control plane reads them, passes the gate and is published
    run = retrain(client, {"model": MODEL, "epochs": 3, "publish": True})
    assert run["status"] == "passed", (run["message"], run["log_tail"])
    assert run["published"] == 2 and run["options"]["model"] == MODEL
    card = run["report"]
    assert card["confirmations"]["read"] == CONFIRMED
    assert card["confirmations"]["held_out"] == CONFIRMED // 5
    assert card["gate"]["held_out_judged"] is False  # 12 held out: under MIN_HOLDOUT
    assert (repository / XRAY_CLASSIFIER / "2" / "model.onnx").is_file()

    # 3. registered (Triton loads it): staging meets it at once, production does not
    assert move(client, "versions", {"model": MODEL, "version": 2}, 201) == {
        2: "candidate", 1: "production",
    }  # fmt: skip
    before = _answers(client, clinician, traffic[:20])
    assert {v for v, _ in before} == {"1"}
    assert set(_versions(client, staging, traffic[:10])) == {"2"}

    # 4. a canary at 50 %: a stable share of images, the same image always the same version
    assert move(client, "canary", {"model": MODEL, "version": 2, "percent": 50})[2] == "canary"
    during = _versions(client, clinician, traffic)
    share = Counter(during)["2"] / len(traffic)
    assert 0.3 <= share <= 0.7, share
    assert _versions(client, clinician, traffic[:10]) == during[:10]

    # 5. promotion: every image meets version 2; its heatmap comes from version 2
    assert move(client, "promote", {"model": MODEL}) == {2: "production", 1: "archived"}
    after = _answers(client, clinician, traffic[:20])
    assert {v for v, _ in after} == {"2"}
    assert [p for _, p in after] != [p for _, p in before], "is version 2 the same model?"
    diagnosis = _diagnose(client, clinician, traffic[0])
    heatmap = client.get(f"/v1/diagnoses/{diagnosis['id']}/heatmap", headers=clinician)
    assert heatmap.status_code == 200 and heatmap.content.startswith(b"\x89PNG")
    drift = client.get("/v1/diagnoses/drift", params={"window": 30}, headers=clinician)
    assert drift.status_code == 200, drift.text

    # 6. rollback: version 1 answers the very next image
    assert move(client, "rollback", {"model": MODEL}) == {2: "rolled_back", 1: "production"}
    assert _answers(client, clinician, traffic[:20]) == before

    # 7. a canary made to fail live is rolled back by the orchestrator itself
    a_failing_canary_is_rolled_back(
        client, root, XRAY, lambda: _versions(client, clinician, traffic[:40])
    )


def test_a_candidate_trained_on_shuffled_labels_is_refused(stack, monkeypatch, capsys):
    _, repository, database, root = stack
    monkeypatch.setenv("EXPORT_WORK_DIR", str(root / "work_refused"))
    argv = [
        "xray-retrain", "--database-url", database, "--production-repository", str(repository),
        "--output", str(root / "refused"), "--epochs", "2", "--shuffle-labels",
    ]  # fmt: skip
    assert export_main(argv) == 1
    captured = capsys.readouterr()
    assert "candidate refused" in captured.err and "test AUC" in captured.err
    (card,) = (root / "refused" / XRAY_CLASSIFIER).glob("*/model_card.json")
    assert json.loads(card.read_text())["status"] == "refused"
    assert export_main(["xray-publish", str(card), "--repository", str(repository)]) == 2
