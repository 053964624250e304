"""Caller-sent images: checked from their header, decoded and made into the classifier's input.

The orchestrator checks an upload with `check_image` before it is stored or sent (a clear 4xx,
in microseconds: only the header is read), and xray_preprocess decodes it with `model_input`,
which checks again, so Triton refuses bad bytes that reach it by another road.
"""

import io
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from contracts.xray import FORMATS, MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS, PIXEL_MEAN, PIXEL_STD, SIZE

# Modes made grey as they are; anything else (CMYK, YCbCr, LAB, 32-bit float) is refused.
GREY_MODES = {"1", "L", "LA", "P", "PA", "RGB", "RGBA", "I;16", "I;16B", "I;16L", "I"}
# The limit is checked here from the header, before decoding; Pillow's own bomb check
# would only warn below twice its limit.
Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS


# What xray_preprocess puts before a BadImage's reason, so that a caller tells the image's fault
# from Triton's (ensembles report their steps' errors as INTERNAL).
BAD_IMAGE = "bad image: "


class BadImage(ValueError):
    """Bytes that are not an image this service diagnoses; the message says why."""


@dataclass(frozen=True)
class ImageInfo:
    format: str  # "PNG" or "JPEG"
    width: int
    height: int
    mode: str


@contextmanager
def _opened(data: bytes, max_bytes: int) -> Iterator[Image.Image]:
    """Image.open after every check that needs no decoding; closed on leaving."""
    if not data:
        raise BadImage("the image is empty (zero bytes)")
    if len(data) > max_bytes:
        raise BadImage(f"the image is over the {max_bytes}-byte limit")
    image = _open(data)
    try:
        yield image
    finally:
        image.close()


def check_image(data: bytes, max_bytes: int = MAX_IMAGE_BYTES) -> ImageInfo:
    """The image's header, checked; raises BadImage. Decodes no pixels."""
    with _opened(data, max_bytes) as image:
        return ImageInfo(image.format, image.width, image.height, image.mode)


def decode_grey(data: bytes, max_bytes: int = MAX_IMAGE_BYTES) -> Image.Image:
    """The whole image, decoded and made grey ("L"); raises BadImage."""
    with _opened(data, max_bytes) as image:
        try:
            image.load()
        except (OSError, SyntaxError, ValueError) as error:
            raise BadImage(f"the image is truncated or corrupt ({error})") from error
        return _grey(image)


def model_input(data: bytes, max_bytes: int = MAX_IMAGE_BYTES) -> np.ndarray:
    """The classifier's input for one image: float32 [1, SIZE, SIZE], normalised as in training."""
    return normalise(resized(decode_grey(data, max_bytes)))


def image_statistics(inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each classifier input's brightness and contrast: the mean and standard deviation of its
    pixels on the 0-1 scale, from normalised inputs [N, 1, SIZE, SIZE] (what drift compares)."""
    pixels = inputs.reshape(len(inputs), -1) * PIXEL_STD + PIXEL_MEAN
    return pixels.mean(axis=1).astype(np.float32), pixels.std(axis=1).astype(np.float32)


def png_bytes(pixels: np.ndarray) -> bytes:
    """uint8 grey pixels [H, W] as a PNG file (benchmarks and tests send these)."""
    out = io.BytesIO()
    Image.fromarray(pixels, "L").save(out, format="PNG")
    return out.getvalue()


def resized(grey: Image.Image) -> np.ndarray:
    """SIZE x SIZE uint8 pixels; shrinking antialiases (Lanczos), as PneumoniaMNIST was made."""
    if grey.size != (SIZE, SIZE):
        grey = grey.resize((SIZE, SIZE), Image.Resampling.LANCZOS)
    return np.asarray(grey, dtype=np.uint8)


def normalise(pixels: np.ndarray) -> np.ndarray:
    """uint8 [..., SIZE, SIZE] → float32 [..., 1, SIZE, SIZE], as the classifier was trained."""
    scaled = pixels.astype(np.float32) / 255.0
    return ((scaled - PIXEL_MEAN) / PIXEL_STD)[..., None, :, :].astype(np.float32)


# Formats named by their first bytes, to say what was sent instead; only PNG and JPEG are parsed.
OTHER_FORMATS = {
    b"GIF87a": "GIF",
    b"GIF89a": "GIF",
    b"BM": "BMP",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
    b"RIFF": "WebP",
    b"%PDF": "PDF",
}


def _open(data: bytes) -> Image.Image:
    for magic, name in OTHER_FORMATS.items():
        if data.startswith(magic):
            raise BadImage(f"{name} images are not accepted: send PNG or JPEG")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise BadImage(
            f"the image claims too many pixels (the limit is {MAX_IMAGE_PIXELS})"
        ) from error
    except UnidentifiedImageError as error:
        raise BadImage("not an image: expected PNG or JPEG bytes") from error
    except (OSError, SyntaxError, ValueError) as error:
        raise BadImage(f"the image's header is corrupt ({error})") from error
    try:
        _check_header(image)
    except BadImage:
        image.close()
        raise
    return image


def _check_header(image: Image.Image) -> None:
    if image.width < 1 or image.height < 1:
        raise BadImage("the image has no pixels")
    if image.width * image.height > MAX_IMAGE_PIXELS:
        raise BadImage(
            f"the image claims {image.width} x {image.height} pixels, over the limit of "
            f"{MAX_IMAGE_PIXELS}"
        )
    if getattr(image, "n_frames", 1) > 1:
        raise BadImage("animated images are not accepted: send one frame")
    if image.mode not in GREY_MODES:
        raise BadImage(f"{image.mode} images are not accepted: send grey or RGB")


def _grey(image: Image.Image) -> Image.Image:
    if image.mode.startswith("I"):  # 16- or 32-bit grey: scale its range to 8 bits
        values = np.asarray(image, dtype=np.float64)
        low, high = float(values.min()), float(values.max())
        span = high - low or 1.0
        return Image.fromarray(((values - low) / span * 255).round().astype(np.uint8), "L")
    if image.mode in ("LA", "PA", "RGBA", "P"):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (0, 0, 0, 255))
        image = Image.alpha_composite(background, image)
    return image.convert("L")
