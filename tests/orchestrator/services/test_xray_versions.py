"""The x-ray's versions on the database itself: which version answered a diagnosis, the
clinicians' overrides the canary's watch counts per version, and the confirmations
`export xray-retrain` reads back."""

from datetime import timedelta

import numpy as np
import pytest

from contracts.image_store import FolderImages
from contracts.images import ImageInfo, png_bytes
from export.corrections import CorrectionsUnavailable
from export.xray.confirmations import read_confirmations
from orchestrator.db.models import utcnow
from orchestrator.db.session import make_engine, session_factory
from orchestrator.services import diagnoses, keys
from orchestrator.services.canary import diagnosis_overrides
from orchestrator.triton.xray_client import XrayAnswer

INFO = ImageInfo("PNG", 28, 28, "L")
IMAGE = png_bytes(np.arange(28 * 28, dtype=np.uint8).reshape(28, 28))


@pytest.fixture
def database(tmp_path):
    url = f"sqlite:///{tmp_path / 'versions.db'}"
    engine = make_engine(url)
    sessions = session_factory(engine)
    with sessions() as session:
        keys.ensure_bootstrap_key(session=session, key="sk-a")
        tenant = keys.platform_tenant(session)
        key, _ = keys.create_key(session=session, tenant_id=tenant.id, scopes=["diagnoses:write"])
        ids = (tenant.id, key.id)
    yield url, sessions, ids
    engine.dispose()


def _diagnosis(session, ids, version: str | None, label="pneumonia", confirmed=None, image=IMAGE):
    row = diagnoses.create_diagnosis(
        session, *ids, image, INFO, XrayAnswer(label, 0.9, 0.5, version), timedelta(days=1)
    )
    if confirmed is not None:
        row.confirmed_label, row.confirmed_at = confirmed, utcnow()
        session.commit()
    return row


def test_overrides_are_counted_per_version_since_the_canary_began(database):
    _, sessions, ids = database
    with sessions() as session:
        since = utcnow() - timedelta(seconds=1)
        _diagnosis(session, ids, "2", confirmed="normal")  # overridden
        _diagnosis(session, ids, "2", confirmed="pneumonia")  # confirmed as answered
        _diagnosis(session, ids, "2")  # not confirmed yet
        _diagnosis(session, ids, "1", confirmed="normal")
        assert diagnosis_overrides(session, "2", since) == (3, 1)
        assert diagnosis_overrides(session, "1", since) == (1, 1)
        assert diagnosis_overrides(session, "3", since) == (0, 0)
        assert diagnosis_overrides(session, "2", utcnow() + timedelta(seconds=5)) == (0, 0)


def test_the_version_that_answered_a_diagnosis(database):
    _, sessions, ids = database
    with sessions() as session:
        assert diagnoses.answered_by(_diagnosis(session, ids, "3")) == 3
        assert diagnoses.answered_by(_diagnosis(session, ids, None)) == 1  # before versions
        assert diagnoses.answered_by(_diagnosis(session, ids, "9" * 30)) == 1


def test_confirmations_are_read_oldest_first_with_their_images(database):
    url, sessions, ids = database
    with sessions() as session:
        _diagnosis(session, ids, "1", label="pneumonia", confirmed="normal")
        _diagnosis(session, ids, "1", label="normal")  # never confirmed: not read
        _diagnosis(session, ids, "1", label="normal", confirmed="normal")
        _diagnosis(session, ids, "1", confirmed="normal", image=b"\x89PNG broken")
    confirmations = read_confirmations(url)
    assert len(confirmations) == 2 and confirmations.skipped == 1
    assert confirmations.split.labels.tolist() == [0, 0]
    assert confirmations.predicted.tolist() == [1, 0]
    assert confirmations.split.images.shape == (2, 28, 28)
    assert np.array_equal(confirmations.split.images[0], np.arange(784).reshape(28, 28) % 256)
    train, held = confirmations.split_recent(0.5)
    assert (len(train), len(held)) == (1, 1)


def test_confirmed_images_kept_in_a_store_are_read_from_it(database, tmp_path):
    url, sessions, ids = database
    store = FolderImages(tmp_path / "images")
    with sessions() as session:
        kept = diagnoses.create_diagnosis(
            session, *ids, IMAGE, INFO, XrayAnswer("pneumonia", 0.9, 0.5, "1"),
            timedelta(days=1), store,
        )  # fmt: skip
        kept.confirmed_label, kept.confirmed_at = "normal", utcnow()
        session.commit()
        lost = _diagnosis(session, ids, "1", confirmed="pneumonia")
        lost.image, lost.image_key = None, "1/" + "0" * 32 + ".png"  # not in the store
        session.commit()
    confirmations = read_confirmations(url, store)
    assert (len(confirmations), confirmations.skipped) == (1, 1)
    assert confirmations.split.labels.tolist() == [0]
    with pytest.raises(CorrectionsUnavailable, match="IMAGE_STORE_KIND"):
        read_confirmations(url, None)
