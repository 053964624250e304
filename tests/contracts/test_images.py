"""Caller-sent images: the checks every upload meets before its pixels are read, and the
classifier's input made from them."""

import time

import numpy as np
import pytest
from PIL import Image

from contracts.images import BadImage, check_image, decode_grey, model_input, normalise
from contracts.xray import PIXEL_MEAN, PIXEL_STD, SIZE
from tests.utils.images import encoded, hostile_images, png_of

RNG = np.random.default_rng(7)
PIXELS = RNG.integers(0, 256, (SIZE, SIZE), dtype=np.uint8)
GOOD_PNG = png_of(PIXELS)


@pytest.mark.parametrize("name", list(hostile_images(GOOD_PNG)))
def test_each_bad_image_is_refused_quickly_with_its_reason(name):
    data, word = hostile_images(GOOD_PNG)[name]
    started = time.perf_counter()
    with pytest.raises(BadImage) as refused:
        model_input(data)
    assert time.perf_counter() - started < 1.0
    assert word.lower() in str(refused.value).lower(), str(refused.value)


def test_the_header_check_refuses_all_but_truncation_without_decoding():
    """check_image reads the header only: a truncated file passes it (Triton's decode refuses
    it), every other bad input is refused there."""
    for name, (data, _) in hostile_images(GOOD_PNG).items():
        if name == "truncated":
            assert check_image(data).format == "PNG"
            continue
        with pytest.raises(BadImage):
            check_image(data)


def test_an_image_over_the_byte_limit_is_refused():
    with pytest.raises(BadImage, match="byte limit"):
        check_image(GOOD_PNG, max_bytes=len(GOOD_PNG) - 1)
    assert check_image(GOOD_PNG, max_bytes=len(GOOD_PNG)).width == SIZE


def test_a_28_pixel_png_becomes_exactly_its_normalised_pixels():
    """What training saw: the served path must not resample an image of the model's size."""
    np.testing.assert_array_equal(model_input(GOOD_PNG), normalise(PIXELS))
    assert model_input(GOOD_PNG).shape == (1, SIZE, SIZE)
    assert model_input(GOOD_PNG).dtype == np.float32


@pytest.mark.parametrize(
    "image",
    [
        Image.fromarray(np.stack([PIXELS] * 3, axis=-1), "RGB"),
        Image.fromarray(np.stack([PIXELS] * 3 + [np.full_like(PIXELS, 255)], axis=-1), "RGBA"),
        Image.fromarray(PIXELS.astype(np.uint16) * 257).convert("I;16"),
    ],
    ids=["RGB", "RGBA", "16-bit"],
)
def test_colour_and_deep_images_are_made_grey(image):
    grey = np.asarray(decode_grey(encoded(image)), dtype=np.int16)
    assert np.abs(grey - PIXELS).max() <= 1


def test_a_large_jpeg_is_shrunk_with_antialiasing():
    """A 448 x 448 JPEG of a smooth 28 x 28 picture comes back close to that picture, and a
    fine stripe pattern averages to grey instead of aliasing into coarse stripes."""
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    smooth = (127 + 100 * np.sin(x / 4.0) * np.cos(y / 5.0)).astype(np.uint8)
    big = Image.fromarray(smooth, "L").resize((448, 448), Image.Resampling.BICUBIC)
    pixels = model_input(encoded(big, "JPEG", quality=95))
    restored = (pixels[0] * PIXEL_STD + PIXEL_MEAN) * 255
    assert pixels.shape == (1, SIZE, SIZE)
    assert np.abs(restored - smooth).mean() < 4
    stripes = np.tile(np.array([0, 255], dtype=np.uint8), (448, 224))  # one-pixel stripes
    shrunk = (model_input(encoded(Image.fromarray(stripes, "L")))[0] * PIXEL_STD + PIXEL_MEAN) * 255
    assert np.abs(shrunk - 127.5).max() < 10
