"""Retention of diagnoses, on the database itself: hidden once expired, then deleted, with
their images where an image store keeps them."""

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from contracts.image_store import FolderImages, ImageMissing, ImageStoreUnavailable
from contracts.images import ImageInfo
from orchestrator.db.models import Diagnosis, utcnow
from orchestrator.db.session import make_engine, session_factory
from orchestrator.errors import NotFound
from orchestrator.services import diagnoses, keys
from orchestrator.triton.xray_client import XrayAnswer

ANSWER = XrayAnswer("pneumonia", 0.9, 0.5, "1")
INFO = ImageInfo("PNG", 28, 28, "L")


@pytest.fixture
def sessions(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'diagnoses.db'}")
    yield session_factory(engine)
    engine.dispose()


def test_an_expired_diagnosis_is_hidden_then_purged(sessions):
    with sessions() as session:
        keys.ensure_bootstrap_key(session=session, key="sk-a")
        tenant = keys.platform_tenant(session)
        key, _ = keys.create_key(session=session, tenant_id=tenant.id, scopes=["diagnoses:read"])
        kept = diagnoses.create_diagnosis(
            session, tenant.id, key.id, b"png", INFO, ANSWER, timedelta(days=1)
        )
        gone = diagnoses.create_diagnosis(
            session, tenant.id, key.id, b"png", INFO, ANSWER, timedelta(days=1)
        )
        gone.expires_at = utcnow() - timedelta(seconds=1)
        session.commit()
        with pytest.raises(NotFound):
            diagnoses.get_diagnosis(session, tenant.id, gone.id)
        listed = diagnoses.list_diagnoses(session, tenant.id, label=None, limit=10, cursor=None)
        assert [d.id for d in listed.data] == [kept.id]
        assert diagnoses.purge_expired(session) == 1
        assert session.scalar(select(func.count()).select_from(Diagnosis)) == 1
        assert diagnoses.get_diagnosis(session, tenant.id, kept.id).image == b"png"


def test_an_expired_diagnosis_leaves_the_image_store_with_its_row(sessions, tmp_path):
    store = FolderImages(tmp_path / "images")
    with sessions() as session:
        keys.ensure_bootstrap_key(session=session, key="sk-b")
        tenant = keys.platform_tenant(session)
        key, _ = keys.create_key(session=session, tenant_id=tenant.id, scopes=["diagnoses:read"])
        rows = [
            diagnoses.create_diagnosis(
                session, tenant.id, key.id, b"png", INFO, ANSWER, timedelta(days=1), store
            )
            for _ in range(3)
        ]
        assert all(r.image is None and store.get(r.image_key) == b"png" for r in rows)
        for row in rows[:2]:
            row.expires_at = utcnow() - timedelta(seconds=1)
        session.commit()
        expired_keys = [r.image_key for r in rows[:2]]
        assert diagnoses.purge_expired(session, store) == 2
        for image_key in expired_keys:
            with pytest.raises(ImageMissing):
                store.get(image_key)
        assert store.get(rows[2].image_key) == b"png"
        assert diagnoses.image_of(rows[2], store) == b"png"
        with pytest.raises(ImageStoreUnavailable):  # kept in a store, and none configured
            diagnoses.image_of(rows[2], None)
