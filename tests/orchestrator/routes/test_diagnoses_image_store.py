"""Diagnoses with their images kept outside the database: in a folder, and in an S3 bucket
through the MinIO client (moto's S3 server standing in for compose's MinIO). A real
orchestrator and Triton; SQLite. What is sent is what the store holds, the row names it, the
heatmap reads it back, DELETE removes it, and a store that is down costs a 503, not a row."""

import sqlite3
import time

import pytest

from contracts.image_store import FolderImages, ImageMissing, ObjectStoreImages
from export.settings import ExportSettings
from export.xray.data import load_pneumoniamnist
from tests.utils.images import png_of
from tests.utils.orchestrator import Orchestrator, new_key, new_tenant
from tests.utils.s3 import s3_endpoint, s3_env, s3_settings

SCOPES = ["diagnoses:write", "diagnoses:read"]


@pytest.fixture(scope="module", params=["folder", "s3"])
def stack(request, tmp_path_factory, triton_settings, triton):
    """(client, the store as the test reads it, the database file, the S3 server)."""
    root = tmp_path_factory.mktemp(f"images_{request.param}")
    database = root / "orchestrator.db"
    with s3_endpoint() as server:
        if request.param == "folder":
            env = {"IMAGE_STORE_KIND": "folder", "IMAGE_STORE_FOLDER": str(root / "images")}
            store = FolderImages(root / "images")
        else:
            env = s3_env(server.address)
            store = ObjectStoreImages(s3_settings(server.address))
        orchestrator = Orchestrator(f"sqlite:///{database}", triton_settings, **env).start()
        try:
            yield orchestrator.client, store, database, server
        finally:
            orchestrator.close()


@pytest.fixture(scope="module")
def image() -> bytes:
    split = load_pneumoniamnist(ExportSettings().pneumoniamnist_dir)["test"]
    return png_of(split.images[0])


def _stored(database, diagnosis_id: int) -> tuple:
    with sqlite3.connect(database) as connection:
        return connection.execute(
            "SELECT image, image_key FROM diagnoses WHERE id = ?", (diagnosis_id,)
        ).fetchone()


def test_an_image_lives_in_the_store_until_deleted(stack, image):
    client, store, database, _ = stack
    headers = {"X-API-Key": new_key(client, SCOPES, new_tenant(client, "store clinic")["id"])}
    sent = client.post(
        "/v1/diagnoses", content=image, headers=headers | {"Content-Type": "image/png"}
    )
    assert sent.status_code == 201, sent.text
    diagnosis_id = sent.json()["id"]
    in_row, key = _stored(database, diagnosis_id)
    assert in_row is None and key.startswith(f"{_tenant_of(client, headers)}/")
    assert store.get(key) == image

    heatmap = client.get(f"/v1/diagnoses/{diagnosis_id}/heatmap", headers=headers)
    assert heatmap.status_code == 200 and heatmap.content.startswith(b"\x89PNG")

    deleted = client.delete(f"/v1/diagnoses/{diagnosis_id}", headers=headers)
    assert deleted.status_code == 204
    with pytest.raises(ImageMissing):
        store.get(key)
    assert _stored(database, diagnosis_id) is None


@pytest.mark.parametrize("stack", ["s3"], indirect=True)  # a local folder does not go down
def test_a_store_that_is_down_costs_a_503_and_no_row(stack, image):
    """Last in this module: the S3 server stays down."""
    client, _, database, server = stack
    headers = {"X-API-Key": new_key(client, SCOPES, "down clinic")}
    server.stop()
    started = time.monotonic()
    sent = client.post(
        "/v1/diagnoses", content=image, headers=headers | {"Content-Type": "image/png"}
    )
    assert sent.status_code == 503, sent.text
    assert "the diagnosis was not stored" in sent.json()["error"]["message"]
    assert time.monotonic() - started < 15
    with sqlite3.connect(database) as connection:
        tenant = _tenant_of(client, headers)
        rows = connection.execute("SELECT count(*) FROM diagnoses WHERE tenant_id = ?", (tenant,))
        assert rows.fetchone() == (0,)


def _tenant_of(client, headers) -> int:
    return client.get("/v1/me", headers=headers).json()["tenant_id"]
