"""Images for tests, good and hostile, made in memory."""

import io
import struct
import zlib

import numpy as np
from PIL import Image

from contracts.images import png_bytes


def encoded(image: Image.Image, format: str = "PNG", **options) -> bytes:
    out = io.BytesIO()
    image.save(out, format=format, **options)
    return out.getvalue()


def png_of(pixels: np.ndarray) -> bytes:
    """A grey PNG of uint8 pixels [H, W]."""
    return png_bytes(pixels)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(width: int = 50_000, height: int = 50_000) -> bytes:
    """A small PNG whose header claims width x height grey pixels (2.5 gigapixels by default)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    body = zlib.compress(b"\x00" * 1024)  # a sliver of the rows it claims
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", body)
        + _chunk(b"IEND", b"")
    )


def animated(format: str) -> bytes:
    """Two frames, as a GIF or an animated PNG."""
    frames = [Image.new("L", (28, 28), shade) for shade in (0, 255)]
    return encoded(frames[0], format, save_all=True, append_images=frames[1:], duration=100)


def cmyk_jpeg() -> bytes:
    return encoded(Image.new("CMYK", (32, 32), (0, 50, 100, 0)), "JPEG")


def hostile_images(good_png: bytes) -> dict[str, tuple[bytes, str]]:
    """Bad uploads by name: (bytes, a word the refusal must contain)."""
    return {
        "not an image": (b"This is a text file, not an x-ray.\n" * 20, "not an image"),
        "truncated": (good_png[: len(good_png) // 2], "truncated"),
        "decompression bomb": (png_bomb(), "pixels"),
        "animated GIF": (animated("GIF"), "GIF"),
        "animated PNG": (animated("PNG"), "animated"),
        "CMYK JPEG": (cmyk_jpeg(), "CMYK"),
        "zero bytes": (b"", "empty"),
    }
