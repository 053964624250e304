"""Clinicians' confirmations, read from the orchestrator's database for retraining the x-ray
classifier: every diagnosis whose `confirmed_label` a clinician set (PATCH /v1/diagnoses/{id}),
with its stored image made the classifier's 28 x 28 input.

Read-only, with SQLAlchemy Core over the one table it needs, as export/corrections.py reads
agents' corrections; an image kept in the image store is read from the store the IMAGE_STORE_*
settings name, the orchestrator's (contracts/image_store.py). Diagnoses past their retention
are deleted with their images, so a retrain learns from the retention window's confirmations.
"""

from dataclasses import dataclass
from datetime import datetime

import numpy as np
from sqlalchemy import (
    DateTime,
    Integer,
    LargeBinary,
    String,
    column,
    select,
    table,
)

from contracts.image_store import ImageMissing, ImageStore, ImageStoreUnavailable, open_image_store
from contracts.images import BadImage, decode_grey, resized
from contracts.xray import LABELS, SIZE
from export.corrections import CorrectionsUnavailable, as_utc, read_rows
from export.xray.data import ImageSplit

DIAGNOSES = table(
    "diagnoses",
    column("id", Integer),
    column("label", String),
    column("confirmed_label", String),
    column("confirmed_at", DateTime),
    column("model_version", String),
    column("image", LargeBinary),
    column("image_key", String),
)


@dataclass(frozen=True)
class Confirmations:
    """Confirmed images, oldest confirmation first."""

    split: ImageSplit  # the 28 x 28 inputs with the confirmed labels
    predicted: np.ndarray  # int64 [N], what the model had answered
    ids: list[int]
    confirmed_at: list[datetime]
    skipped: int = 0  # stored images that no longer decode

    def __len__(self) -> int:
        return len(self.ids)

    def split_recent(self, fraction: float) -> tuple[ImageSplit, ImageSplit]:
        """(older for training, the most recent `fraction` held out for the gate)."""
        held = round(len(self) * fraction)
        cut = len(self) - held
        images, labels = self.split.images, self.split.labels
        return ImageSplit(images[:cut], labels[:cut]), ImageSplit(images[cut:], labels[cut:])


def read_confirmations(url: str, store: ImageStore | None = None) -> Confirmations:
    """Raises CorrectionsUnavailable when the database or the image store cannot be read.
    `store`: where images kept outside the rows are (default: the configured one)."""
    store = store or open_image_store()
    query = (
        select(DIAGNOSES)
        .where(DIAGNOSES.c.confirmed_label.is_not(None))
        .order_by(DIAGNOSES.c.confirmed_at, DIAGNOSES.c.id)
    )
    rows = read_rows(url, query, "confirmations", "0012_image_store")
    kept, images, skipped = [], [], 0
    for row in rows:
        try:
            images.append(resized(decode_grey(_image(row, store))))
        except (BadImage, ImageMissing):  # refused by a later check, or gone from the store
            skipped += 1
            continue
        kept.append(row)
    return Confirmations(
        split=ImageSplit(
            np.stack(images) if images else np.zeros((0, SIZE, SIZE), np.uint8),
            np.array([LABELS.index(r["confirmed_label"]) for r in kept], dtype=np.int64),
        ),
        predicted=np.array([LABELS.index(r["label"]) for r in kept], dtype=np.int64),
        ids=[r["id"] for r in kept],
        confirmed_at=[as_utc(r["confirmed_at"]) for r in kept],
        skipped=skipped,
    )


def _image(row, store: ImageStore | None) -> bytes:
    if row["image_key"] is None:
        return row["image"]
    if store is None:
        raise CorrectionsUnavailable(
            "confirmed images are kept in an image store: set IMAGE_STORE_KIND and its "
            "settings as the orchestrator has them"
        )
    try:
        return store.get(row["image_key"])
    except ImageStoreUnavailable as error:
        raise CorrectionsUnavailable(str(error)) from error
