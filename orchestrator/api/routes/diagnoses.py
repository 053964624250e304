"""Chest x-ray diagnoses: send an image, read, list, confirm and delete results, and see why
the model answered as it did (the heatmap)."""

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from contracts.image_store import ImageStoreUnavailable
from contracts.images import BadImage, ImageInfo, check_image, decode_grey, normalise, resized
from contracts.xray import XRAY_ENSEMBLE, xray_reference_file
from orchestrator.api.deps import SessionDep, require
from orchestrator.api.keycache import Caller
from orchestrator.api.params import IdPath
from orchestrator.errors import ApiError, unavailable
from orchestrator.schemas.diagnoses import (
    DiagnosisConfirm,
    DiagnosisPage,
    DiagnosisPublic,
    Label,
)
from orchestrator.services import diagnoses, heatmap
from orchestrator.services.xray_drift import MIN_WINDOW, Reference, drift_report
from orchestrator.services.xray_routing import diagnose_routed
from orchestrator.triton.triage_client import TritonRejected, TritonUnavailable

router = APIRouter(prefix="/v1/diagnoses", tags=["diagnoses"])

WriteKey = Annotated[Caller, require("diagnoses:write")]
ReadKey = Annotated[Caller, require("diagnoses:read")]
IMAGE_TYPES = ("image/png", "image/jpeg")
FORM_FIELD = "image"
IMAGE_BODY = {
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {FORM_FIELD: {"type": "string", "format": "binary"}},
                "required": [FORM_FIELD],
            }
        },
        **{kind: {"schema": {"type": "string", "format": "binary"}} for kind in IMAGE_TYPES},
    },
    "required": True,
}


@router.post(
    "",
    status_code=201,
    response_model=DiagnosisPublic,
    openapi_extra={"requestBody": IMAGE_BODY},
)
async def create_diagnosis(request: Request, key: WriteKey):
    """Diagnose one chest x-ray: a multipart form with the file in field `image`, or the
    image itself as the body (`Content-Type: image/png` or `image/jpeg`). The image is kept
    in-house until `expires_at`. `model_version` names the x-ray version that answered (a
    canary takes a share of production images, always the same images; staging keys meet the
    canary or the newest candidate)."""
    image = await _uploaded_image(request)
    info = _checked(image, request.app.state.settings.max_image_bytes)
    state = request.app.state
    try:
        answer = await diagnose_routed(
            state.xray, image, key.environment, state.versions, state.canary
        )
    except TritonRejected as error:
        raise ApiError(422, str(error), param=FORM_FIELD, code="bad_image") from None
    except TritonUnavailable:
        raise unavailable("the x-ray model is unavailable; retry shortly") from None
    retention = timedelta(days=request.app.state.settings.diagnosis_retention_days)

    def store():
        with state.sessions() as session:
            row = diagnoses.create_diagnosis(
                session, key.tenant_id, key.id, image, info, answer, retention, state.image_store
            )
            return diagnoses.public(row)

    try:
        created = await run_in_threadpool(store)
    except ImageStoreUnavailable as error:
        raise unavailable(f"{error}; the diagnosis was not stored, retry shortly") from None
    request.app.state.metrics.diagnoses.labels(label=created.label.value).inc()
    return Response(
        created.model_dump_json(),
        status_code=201,
        media_type="application/json",
        headers={"Location": f"/v1/diagnoses/{created.id}"},
    )


@router.get("/drift")
async def get_drift(
    request: Request,
    key: ReadKey,
    window: Annotated[int, Query(ge=MIN_WINDOW, le=5000)] = 200,
) -> dict:
    """The tenant's most recent diagnoses against the model's reference: brightness, contrast
    and the probability of pneumonia (Kolmogorov-Smirnov), with the share answered pneumonia
    and the override rate of confirmed ones. 409 with fewer than 30 diagnoses. The reference
    is the production version's."""
    production = (await request.app.state.versions.routing(XRAY_ENSEMBLE)).production
    path = request.app.state.model_repository / xray_reference_file(production)

    def report() -> dict:
        with request.app.state.sessions() as session:
            return drift_report(session, key.tenant_id, window, Reference.load(path))

    return await run_in_threadpool(report)


@router.get("/{diagnosis_id}", response_model=DiagnosisPublic)
def get_diagnosis(diagnosis_id: IdPath, session: SessionDep, key: ReadKey):
    return diagnoses.public(diagnoses.get_diagnosis(session, key.tenant_id, diagnosis_id))


@router.get("", response_model=DiagnosisPage)
def list_diagnoses(
    session: SessionDep,
    key: ReadKey,
    label: Label | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
):
    """The tenant's diagnoses, newest first; follow `next_cursor` for more."""
    return diagnoses.list_diagnoses(
        session, key.tenant_id, label=label.value if label else None, limit=limit, cursor=cursor
    )


@router.patch("/{diagnosis_id}", response_model=DiagnosisPublic)
def confirm_diagnosis(
    diagnosis_id: IdPath, change: DiagnosisConfirm, session: SessionDep, key: WriteKey
):
    """A clinician's confirmed label (a correction where it differs from the model's)."""
    diagnosis = diagnoses.get_diagnosis(session, key.tenant_id, diagnosis_id)
    return diagnoses.public(diagnoses.confirm(session, diagnosis, change, key.id))


@router.delete("/{diagnosis_id}", status_code=204)
def delete_diagnosis(
    diagnosis_id: IdPath, request: Request, session: SessionDep, key: WriteKey
) -> Response:
    """Remove the image and its result (503, and nothing removed, when the image store cannot
    delete the image: retry)."""
    diagnosis = diagnoses.get_diagnosis(session, key.tenant_id, diagnosis_id)
    try:
        diagnoses.delete_diagnosis(session, diagnosis, request.app.state.image_store)
    except ImageStoreUnavailable as error:
        raise unavailable(f"{error}; nothing was deleted, retry shortly") from None
    return Response(status_code=204)


@router.get(
    "/{diagnosis_id}/heatmap",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}, "description": "The x-ray with the heat"}},
)
async def get_heatmap(diagnosis_id: IdPath, request: Request, key: ReadKey) -> Response:
    """The x-ray with the regions that drove its answer in red to yellow (occlusion
    sensitivity, computed by the same Triton model, the version that answered)."""

    def load():
        with request.app.state.sessions() as session:
            row = diagnoses.get_diagnosis(session, key.tenant_id, diagnosis_id)
            image = diagnoses.image_of(row, request.app.state.image_store)
            return image, row.label, diagnoses.answered_by(row)

    try:
        image, label, version = await run_in_threadpool(load)
    except ImageStoreUnavailable as error:
        raise unavailable(f"{error}; retry shortly") from None
    grey = await run_in_threadpool(decode_grey, image)  # once: the input and the picture
    occluded = heatmap.occlusions(normalise(resized(grey)))
    try:
        probabilities = await request.app.state.xray.probabilities(occluded.pixels, version)
    except (TritonRejected, TritonUnavailable):
        raise unavailable("the x-ray model is unavailable; retry shortly") from None
    heat = heatmap.importance(probabilities, occluded.masks, pneumonia=label == "pneumonia")
    png = await run_in_threadpool(heatmap.overlay_png, grey, heat)
    return Response(png, media_type="image/png")


async def _uploaded_image(request: Request) -> bytes:
    """The image's bytes, from a multipart form's `image` field or the whole body."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        try:
            form = await request.form(max_files=1, max_fields=1)
        except Exception as error:  # python-multipart's and Starlette's parse errors
            raise ApiError(400, f"the multipart form could not be read: {error}") from None
        try:
            upload = form.get(FORM_FIELD)
            if not isinstance(upload, UploadFile):
                raise ApiError(
                    422, f"the form has no file in field `{FORM_FIELD}`", param=FORM_FIELD
                )
            return await upload.read()
        finally:
            await form.close()
    if content_type in IMAGE_TYPES:
        return await request.body()
    raise ApiError(
        415,
        "send the image as multipart/form-data (field `image`) or as an image/png or "
        "image/jpeg body",
        code="unsupported_media_type",
    )


def _checked(image: bytes, max_bytes: int) -> ImageInfo:
    """The image's header, or a 422 naming what is wrong with it (no pixel is decoded)."""
    try:
        return check_image(image, max_bytes)
    except BadImage as error:
        status = 413 if len(image) > max_bytes else 422
        raise ApiError(status, str(error), param=FORM_FIELD, code="bad_image") from None
