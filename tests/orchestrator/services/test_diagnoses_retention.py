"""Retention of diagnoses, on the database itself: hidden once expired, then deleted."""

from datetime import timedelta

import pytest
from sqlalchemy import func, select

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
