"""Chest x-ray diagnoses end to end: uploads (multipart or raw), reads, lists, confirmations,
deletes, retention and heatmaps, through a real orchestrator and Triton; on SQLite and
PostgreSQL."""

import io
import time

import numpy as np
import pytest
from PIL import Image

from contracts.xray import XRAY_FILE
from export.settings import ExportSettings
from export.xray.data import load_pneumoniamnist
from export.xray.onnx_files import served_outputs
from tests.utils.images import hostile_images, png_of
from tests.utils.orchestrator import error_of, new_key, new_tenant

SCOPES = ["diagnoses:write", "diagnoses:read"]


@pytest.fixture(scope="module")
def test_split():
    return load_pneumoniamnist(ExportSettings().pneumoniamnist_dir)["test"].head(16)


@pytest.fixture(scope="module")
def clinic(api):
    return {"X-API-Key": new_key(api, SCOPES, new_tenant(api, "clinic A")["id"])}


@pytest.fixture(scope="module")
def other_clinic(api):
    return {"X-API-Key": new_key(api, SCOPES, "clinic B")}


def _send(api, headers, image: bytes, how: str = "multipart"):
    if how == "multipart":
        return api.post("/v1/diagnoses", files={"image": ("x.png", image)}, headers=headers)
    return api.post("/v1/diagnoses", content=image, headers=headers | {"Content-Type": "image/png"})


def _within_limits(call):
    """call() again while it is answered 429 (the test orchestrator's 40-request burst), after
    the wait the answer names; the first other answer."""
    while (response := call()).status_code == 429:
        time.sleep(float(response.headers.get("Retry-After", "1")))
    return response


def _send_within_limits(api, headers, image: bytes) -> dict:
    response = _within_limits(lambda: _send(api, headers, image, "raw"))
    assert response.status_code == 201, response.text
    return response.json()


def test_an_upload_is_diagnosed_as_the_served_model_answers(
    api, clinic, test_split, built_repository
):
    expected = served_outputs(built_repository[0] / XRAY_FILE, test_split.images[:4])
    for i, how in enumerate(["multipart", "raw", "multipart", "raw"]):
        created = _send(api, clinic, png_of(test_split.images[i]), how)
        assert created.status_code == 201, created.text
        body = created.json()
        assert created.headers["Location"] == f"/v1/diagnoses/{body['id']}"
        assert body["label"] == ("pneumonia" if expected["label"][i] else "normal")
        assert body["probability"] == pytest.approx(float(expected["probability"][i]), abs=1e-6)
        assert body["threshold"] == pytest.approx(float(expected["threshold"][i]), abs=1e-6)
        assert body["content_type"] == "image/png" and body["width"] == 28
        assert body["confirmed_label"] is None and body["expires_at"] > body["created_at"]
        assert api.get(f"/v1/diagnoses/{body['id']}", headers=clinic).json() == body


def test_a_jpeg_of_any_size_is_diagnosed(api, clinic, test_split):
    big = Image.fromarray(test_split.images[0], "L").resize((600, 480)).convert("RGB")
    out = io.BytesIO()
    big.save(out, format="JPEG")
    created = api.post(
        "/v1/diagnoses", content=out.getvalue(), headers=clinic | {"Content-Type": "image/jpeg"}
    )
    assert created.status_code == 201, created.text
    assert (created.json()["width"], created.json()["height"]) == (600, 480)
    assert created.json()["content_type"] == "image/jpeg"


def test_list_confirm_and_delete_stay_within_the_tenant(api, clinic, other_clinic, test_split):
    ids = [_send(api, clinic, png_of(p)).json()["id"] for p in test_split.images[4:7]]
    page = api.get("/v1/diagnoses", params={"limit": 2}, headers=clinic).json()
    assert [d["id"] for d in page["data"]] == ids[::-1][:2]
    rest = api.get(
        "/v1/diagnoses", params={"limit": 2, "cursor": page["next_cursor"]}, headers=clinic
    )
    assert rest.json()["data"][0]["id"] == ids[0]
    assert api.get(f"/v1/diagnoses/{ids[0]}", headers=other_clinic).status_code == 404
    assert api.get("/v1/diagnoses", headers=other_clinic).json()["data"] == []

    confirmed = api.patch(
        f"/v1/diagnoses/{ids[1]}", json={"confirmed_label": "normal"}, headers=clinic
    )
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["confirmed_label"] == "normal" and confirmed.json()["confirmed_at"]
    wrong = api.patch(f"/v1/diagnoses/{ids[1]}", json={"confirmed_label": "flu"}, headers=clinic)
    assert wrong.status_code == 422

    assert api.delete(f"/v1/diagnoses/{ids[2]}", headers=other_clinic).status_code == 404
    assert api.delete(f"/v1/diagnoses/{ids[2]}", headers=clinic).status_code == 204
    assert api.get(f"/v1/diagnoses/{ids[2]}", headers=clinic).status_code == 404


def test_scopes_are_enforced(api, test_split):
    tickets_only = {"X-API-Key": new_key(api, ["tickets:write", "tickets:read"], "no x-rays")}
    assert _send(api, tickets_only, png_of(test_split.images[0])).status_code == 403
    assert api.get("/v1/diagnoses", headers=tickets_only).status_code == 403
    reader = {"X-API-Key": new_key(api, ["diagnoses:read"], "reader")}
    assert _send(api, reader, png_of(test_split.images[0])).status_code == 403


@pytest.mark.parametrize("how", ["multipart", "raw"])
def test_every_bad_input_gets_a_4xx_naming_it_quickly(api, clinic, test_split, how):
    for name, (data, word) in hostile_images(png_of(test_split.images[0])).items():
        started = time.perf_counter()
        refused = _send(api, clinic, data, how)
        assert time.perf_counter() - started < 1.0, name
        assert refused.status_code == 422, (name, refused.text)
        assert word.lower() in error_of(refused)["message"].lower(), (name, refused.text)
    assert _send(api, clinic, png_of(test_split.images[0]), how).status_code == 201


def test_bodies_over_the_limit_and_other_media_are_refused(api, clinic):
    huge = b"\x89PNG\r\n\x1a\n" + b"\x00" * (16 << 20)
    started = time.perf_counter()
    refused = api.post(
        "/v1/diagnoses", content=huge, headers=clinic | {"Content-Type": "image/png"}
    )
    assert refused.status_code == 413 and time.perf_counter() - started < 2.0
    text = api.post(
        "/v1/diagnoses", content=b"hello", headers=clinic | {"Content-Type": "text/plain"}
    )
    assert text.status_code == 415
    no_field = api.post("/v1/diagnoses", files={"photo": ("x.png", b"1")}, headers=clinic)
    assert no_field.status_code == 422 and "image" in error_of(no_field)["message"]


def test_the_heatmap_is_a_png_over_the_image(api, clinic, test_split):
    created = _send(api, clinic, png_of(test_split.images[1])).json()
    started = time.perf_counter()
    heat = api.get(f"/v1/diagnoses/{created['id']}/heatmap", headers=clinic)
    assert heat.status_code == 200 and heat.headers["content-type"] == "image/png"
    assert time.perf_counter() - started < 5.0
    picture = np.asarray(Image.open(io.BytesIO(heat.content)).convert("RGB"), dtype=np.int16)
    assert picture.shape[0] >= 280  # drawn large enough to see
    coloured = np.abs(picture[..., 0] - picture[..., 2]) > 30  # red/yellow over grey
    assert 0 < coloured.mean() < 0.9


def _drift(api, headers):
    return api.get("/v1/diagnoses/drift", params={"window": 40}, headers=headers)


def test_drift_flags_brighter_images_and_counts_overrides(api):
    """Training images are what the reference holds: no drift in brightness or contrast. The
    same images washed out (half contrast, brighter) are flagged."""
    headers = {"X-API-Key": new_key(api, SCOPES, "clinic drift")}
    train = load_pneumoniamnist(ExportSettings().pneumoniamnist_dir)["train"].head(40)
    assert api.get("/v1/diagnoses/drift", headers=headers).status_code == 409  # too few
    ids = [_send_within_limits(api, headers, png_of(p))["id"] for p in train.images]
    first = ids[0]
    confirm = {"confirmed_label": "normal"}
    _within_limits(lambda: api.patch(f"/v1/diagnoses/{first}", json=confirm, headers=headers))
    clean = _within_limits(lambda: _drift(api, headers)).json()
    assert clean["window"] == 40
    assert not clean["signals"]["image_mean"]["drifted"], clean
    assert not clean["signals"]["image_std"]["drifted"], clean
    assert clean["confirmed"] == 1 and clean["override_rate"] in (0.0, 1.0)

    washed = (train.images.astype(np.uint16) // 2 + 120).astype(np.uint8)
    for pixels in washed:
        _send_within_limits(api, headers, png_of(pixels))
    shifted = _within_limits(lambda: _drift(api, headers)).json()
    assert shifted["drifted"], shifted
    assert (
        shifted["signals"]["image_mean"]["drifted"] and shifted["signals"]["image_std"]["drifted"]
    )
    assert (
        shifted["signals"]["image_mean"]["window_median"]
        > clean["signals"]["image_mean"]["window_median"]
    )
