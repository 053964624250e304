"""Diagnoses stored in-house: the image with the model's answer, read, listed, confirmed,
deleted, and removed when their retention ends."""

import hashlib
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from contracts.images import ImageInfo
from contracts.xray import BASE_XRAY_VERSION
from orchestrator.db.models import Diagnosis, utcnow
from orchestrator.errors import NotFound
from orchestrator.schemas.diagnoses import DiagnosisConfirm, DiagnosisPage, DiagnosisPublic
from orchestrator.services.pagination import page
from orchestrator.triton.xray_client import XrayAnswer

CONTENT_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg"}


def public(diagnosis: Diagnosis) -> DiagnosisPublic:
    return DiagnosisPublic.model_validate(diagnosis, from_attributes=True)


def create_diagnosis(
    session: Session,
    tenant_id: int,
    key_id: int,
    image: bytes,
    info: ImageInfo,
    answer: XrayAnswer,
    retention: timedelta,
) -> Diagnosis:
    now = utcnow()
    diagnosis = Diagnosis(
        tenant_id=tenant_id,
        key_id=key_id,
        content_type=CONTENT_TYPES[info.format],
        width=info.width,
        height=info.height,
        size_bytes=len(image),
        sha256=hashlib.sha256(image).hexdigest(),
        label=answer.label,
        probability=answer.probability,
        threshold=answer.threshold,
        model_version=answer.model_version,
        image_mean=answer.image_mean,
        image_std=answer.image_std,
        created_at=now,
        expires_at=now + retention,
        image=image,
    )
    session.add(diagnosis)
    session.commit()
    return diagnosis


def answered_by(diagnosis: Diagnosis) -> int:
    """The x-ray version that answered (rows from before versions were tracked: the base)."""
    version = diagnosis.model_version or ""
    return int(version) if version.isdigit() and len(version) < 10 else BASE_XRAY_VERSION


def get_diagnosis(session: Session, tenant_id: int, diagnosis_id: int) -> Diagnosis:
    """The tenant's diagnosis; another tenant's, or an expired one, is as absent as none."""
    diagnosis = session.get(Diagnosis, diagnosis_id)
    if diagnosis is None or diagnosis.tenant_id != tenant_id or diagnosis.expires_at <= utcnow():
        raise NotFound(f"no diagnosis {diagnosis_id}", param="id")
    return diagnosis


def list_diagnoses(
    session: Session, tenant_id: int, *, label: str | None, limit: int, cursor: str | None
) -> DiagnosisPage:
    query = select(Diagnosis).where(
        Diagnosis.tenant_id == tenant_id, Diagnosis.expires_at > utcnow()
    )
    if label is not None:
        query = query.where(Diagnosis.label == label)
    rows, next_cursor = page(session, query, Diagnosis.id, limit, cursor)
    return DiagnosisPage(data=[public(d) for d in rows], next_cursor=next_cursor)


def confirm(session: Session, diagnosis: Diagnosis, change: DiagnosisConfirm, key_id: int):
    diagnosis.confirmed_label = change.confirmed_label.value
    diagnosis.confirmed_by, diagnosis.confirmed_at = key_id, utcnow()
    session.commit()
    return diagnosis


def delete_diagnosis(session: Session, diagnosis: Diagnosis) -> None:
    """The image and its result, gone."""
    session.delete(diagnosis)
    session.commit()


def purge_expired(session: Session, now: datetime | None = None) -> int:
    """Delete every diagnosis past its retention; how many went."""
    result = session.execute(delete(Diagnosis).where(Diagnosis.expires_at <= (now or utcnow())))
    session.commit()
    return result.rowcount
