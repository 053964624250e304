"""Diagnoses stored in-house: the image with the model's answer, read, listed, confirmed,
deleted, and removed when their retention ends.

The image goes into the row, or into the image store (contracts/image_store.py) when one is
set: there first, then the row that names it, so that no row points at nothing; deleting
removes the image first, so that a store that cannot delete leaves the row to try again."""

import hashlib
import logging
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from contracts.image_store import ImageMissing, ImageStore, ImageStoreUnavailable, new_key
from contracts.images import ImageInfo
from contracts.xray import BASE_XRAY_VERSION
from orchestrator.db.models import Diagnosis, utcnow
from orchestrator.errors import NotFound
from orchestrator.schemas.diagnoses import DiagnosisConfirm, DiagnosisPage, DiagnosisPublic
from orchestrator.services.pagination import page
from orchestrator.triton.xray_client import XrayAnswer

log = logging.getLogger(__name__)

CONTENT_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg"}
PURGE_BATCH = 500


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
    store: ImageStore | None = None,
) -> Diagnosis:
    """Raises ImageStoreUnavailable when the store cannot keep the image (nothing is stored)."""
    now = utcnow()
    content_type = CONTENT_TYPES[info.format]
    image_key = None
    if store is not None:
        image_key = new_key(tenant_id, content_type)
        store.put(image_key, image, content_type)
    diagnosis = Diagnosis(
        tenant_id=tenant_id,
        key_id=key_id,
        content_type=content_type,
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
        image=None if store is not None else image,
        image_key=image_key,
    )
    session.add(diagnosis)
    try:
        session.commit()
    except Exception:
        if image_key is not None:
            _forget(store, image_key)
        raise
    return diagnosis


def image_of(diagnosis: Diagnosis, store: ImageStore | None) -> bytes:
    """The diagnosis's image, wherever it is kept. Raises ImageStoreUnavailable, or NotFound
    when the store lost it."""
    if diagnosis.image_key is None:
        return diagnosis.image
    if store is None:
        raise ImageStoreUnavailable(
            "this image is kept in an image store and none is configured (IMAGE_STORE_KIND)"
        )
    try:
        return store.get(diagnosis.image_key)
    except ImageMissing:
        raise NotFound(
            f"the image of diagnosis {diagnosis.id} is no longer in the image store",
            param="id",
            code="image_missing",
        ) from None


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


def delete_diagnosis(session: Session, diagnosis: Diagnosis, store: ImageStore | None) -> None:
    """The image and its result, gone (the image first). Raises ImageStoreUnavailable."""
    _delete_image(store, diagnosis.image_key)
    session.delete(diagnosis)
    session.commit()


def purge_expired(
    session: Session, store: ImageStore | None = None, now: datetime | None = None
) -> int:
    """Delete every diagnosis past its retention, in batches, each image before its row; how
    many went. A store that fails stops the purge (ImageStoreUnavailable); the next retries."""
    purged = 0
    while True:
        expired = session.execute(
            select(Diagnosis.id, Diagnosis.image_key)
            .where(Diagnosis.expires_at <= (now or utcnow()))
            .limit(PURGE_BATCH)
        ).all()
        if not expired:
            return purged
        for _, image_key in expired:
            _delete_image(store, image_key)
        session.execute(delete(Diagnosis).where(Diagnosis.id.in_([i for i, _ in expired])))
        session.commit()
        purged += len(expired)


def _delete_image(store: ImageStore | None, image_key: str | None) -> None:
    if image_key is None:
        return
    if store is None:
        raise ImageStoreUnavailable(
            "this image is kept in an image store and none is configured (IMAGE_STORE_KIND)"
        )
    store.delete(image_key)


def _forget(store: ImageStore, image_key: str) -> None:
    """Best effort: the image of a row that was not written."""
    try:
        store.delete(image_key)
    except ImageStoreUnavailable:
        log.warning(
            "image %s was stored for a diagnosis that was not; delete it by hand", image_key
        )
