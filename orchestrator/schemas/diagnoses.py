"""Image diagnoses: what POST, GET and PATCH /v1/diagnoses answer and take."""

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from contracts.xray import LABELS

Label = StrEnum("Label", {name: name for name in LABELS})


class DiagnosisPublic(BaseModel):
    id: int
    label: Label = Field(description="The model's answer: normal or pneumonia")
    probability: float = Field(description="The model's probability of pneumonia")
    threshold: float = Field(
        description="The probability at and above which the label is pneumonia (chosen on the "
        "validation split for balanced accuracy)"
    )
    model_version: str | None
    content_type: str
    width: int
    height: int
    size_bytes: int
    confirmed_label: Label | None = Field(description="A clinician's label, once confirmed")
    confirmed_at: datetime | None
    created_at: datetime
    expires_at: datetime = Field(description="When the image and this result are deleted")


class DiagnosisPage(BaseModel):
    data: list[DiagnosisPublic]
    next_cursor: str | None


class DiagnosisConfirm(BaseModel):
    """A clinician's confirmed label: a correction when it differs from the model's."""

    model_config = ConfigDict(extra="forbid")

    confirmed_label: Label
