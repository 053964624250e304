"""The image diagnosis models' contract: names, the model's input, the labels and the limits
on the images callers send (the orchestrator, xray_preprocess and export share them)."""

from contracts.versions import BASE_VERSION, step_file, step_reference_file, versioned_model_name

XRAY_PREPROCESS = "xray_preprocess"
XRAY_CLASSIFIER = "xray_classifier"
XRAY_ENSEMBLE = "xray_diagnosis"
XRAY_MODELS = (XRAY_PREPROCESS, XRAY_CLASSIFIER, XRAY_ENSEMBLE)
XRAY_FILE = f"{XRAY_CLASSIFIER}/1/model.onnx"
# What drift compares recent diagnoses with, written beside the model by `export xray`: the
# training images' brightness and contrast, and the validation split's served probabilities.
XRAY_REFERENCE_FILE = f"{XRAY_CLASSIFIER}/1/reference.json"

# Served x-ray versions, laid out as contracts/versions.py says: version 1 is what `export xray`
# writes, served by `xray_diagnosis`; version v is xray_classifier's version v, published by
# `python -m export xray-publish` with an ensemble of its own, `xray_diagnosis_v<v>`.
BASE_XRAY_VERSION = BASE_VERSION


def xray_model_name(version: int) -> str:
    """The ensemble that serves x-ray version `version`."""
    return versioned_model_name(XRAY_ENSEMBLE, version)


def xray_file(version: int) -> str:
    """The served ONNX file of x-ray version `version`, relative to the repository."""
    return step_file(XRAY_CLASSIFIER, version)


def xray_reference_file(version: int) -> str:
    """The drift reference of x-ray version `version`, relative to the repository."""
    return step_reference_file(XRAY_CLASSIFIER, version)


# PneumoniaMNIST's classes, by the index the classifier's `label` output gives.
LABELS = ("normal", "pneumonia")

# The classifier reads grey SIZE x SIZE images, pixel values scaled to [0, 1], then normalised
# with PneumoniaMNIST's training-split mean and standard deviation (export/xray/data.py checks
# these against the data).
SIZE = 28
PIXEL_MEAN = 0.5719
PIXEL_STD = 0.1684

# What a caller may send: PNG or JPEG, one frame, grey, RGB or their alpha variants, at most
# MAX_IMAGE_PIXELS pixels (a chest X-ray is a few megapixels; a PNG claiming 50,000 x 50,000 is
# refused from its header, before a byte of it is decoded) and MAX_IMAGE_BYTES bytes.
FORMATS = ("PNG", "JPEG")
MAX_IMAGE_PIXELS = 25_000_000
MAX_IMAGE_BYTES = 16 << 20
# max_batch_size of xray_diagnosis and its steps (their config.pbtxt)
XRAY_MAX_BATCH = 64
