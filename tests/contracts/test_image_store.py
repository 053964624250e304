"""The image stores: a folder, and an S3 bucket through the MinIO client (against moto's S3
server in process): what goes in comes back, deletes are idempotent, keys are only ours,
and a store that cannot be reached says so quickly."""

import time

import pytest

from contracts.image_store import (
    FolderImages,
    ImageMissing,
    ImageStoreSettings,
    ImageStoreUnavailable,
    ObjectStoreImages,
    new_key,
    open_image_store,
)
from tests.utils.ports import free_ports
from tests.utils.s3 import s3_endpoint, s3_settings


@pytest.fixture(scope="module")
def endpoint():
    with s3_endpoint() as server:
        yield server.address


@pytest.fixture(params=["folder", "s3"])
def store(request, tmp_path, endpoint):
    if request.param == "folder":
        return FolderImages(tmp_path / "images")
    store = ObjectStoreImages(s3_settings(endpoint, bucket=f"b{time.monotonic_ns()}"))
    store.ensure_bucket()
    store.ensure_bucket()  # made once, found after
    return store


def test_an_image_is_kept_read_and_deleted(store):
    key = new_key(7, "image/png")
    assert key.startswith("7/") and key.endswith(".png")
    store.put(key, b"\x89PNG image", "image/png")
    assert store.get(key) == b"\x89PNG image"
    store.delete(key)
    with pytest.raises(ImageMissing):
        store.get(key)
    store.delete(key)  # gone already: not an error


@pytest.mark.parametrize("key", ["../etc/passwd", "7/../../x.png", "/abs.png", "7/short.png"])
def test_only_keys_the_store_made_are_used(store, key):
    with pytest.raises(ImageMissing, match="not an image key"):
        store.get(key)
    with pytest.raises(ImageMissing):
        store.put(key, b"x", "image/png")


def test_a_folder_store_is_owner_only_and_leaves_no_partial_files(tmp_path):
    store = FolderImages(tmp_path / "images")
    key = new_key(1, "image/jpeg")
    store.put(key, b"jpeg", "image/jpeg")
    assert (tmp_path / "images").stat().st_mode & 0o077 == 0
    assert [p.name for p in (tmp_path / "images" / "1").iterdir()] == [key.split("/")[1]]


def test_an_unreachable_object_store_fails_fast_and_clearly():
    (port,) = free_ports(1)  # nothing listens there
    store = ObjectStoreImages(s3_settings(f"127.0.0.1:{port}", s3_timeout_s=1))
    started = time.monotonic()
    with pytest.raises(ImageStoreUnavailable, match="could not store the image"):
        store.put(new_key(1, "image/png"), b"x", "image/png")
    assert time.monotonic() - started < 10


def test_the_database_is_the_default_store(tmp_path):
    assert open_image_store(ImageStoreSettings()) is None
    folder = open_image_store(ImageStoreSettings(kind="folder", folder=tmp_path / "f"))
    assert isinstance(folder, FolderImages) and (tmp_path / "f").is_dir()
