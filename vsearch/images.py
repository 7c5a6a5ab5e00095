"""Uploaded images: the pixel size read from the file's header, refused over a limit, and only then decoded.

A 2.6 MB PNG can declare 30000x30000 pixels: decoded, that is 2.7 GB of BGR and several GB of peak memory in the
decoder. Reading the size from the header first means nothing is allocated for an image over the limit, and only
the formats whose headers are read here reach the decoder.
"""

from __future__ import annotations

import struct

import numpy as np
from numpy.typing import NDArray

from vsearch.errors import InputError, TooLargeError

FORMATS = "JPEG, PNG, BMP or WebP"
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 9 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            i += 2
            continue
        if marker in _JPEG_SOF:
            h, w = struct.unpack(">HH", data[i + 5 : i + 9])
            return w, h
        if marker == 0xDA:  # start of scan before any frame header
            return None
        i += 2 + struct.unpack(">H", data[i + 2 : i + 4])[0]
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    kind = data[12:16]
    if kind == b"VP8X" and len(data) >= 30:
        return 1 + int.from_bytes(data[24:27], "little"), 1 + int.from_bytes(data[27:30], "little")
    if kind == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    if kind == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":
        w, h = struct.unpack("<HH", data[26:30])
        return w & 0x3FFF, h & 0x3FFF
    return None


def image_size(data: bytes) -> tuple[str, int, int]:
    """(format, width, height) read from the header of a JPEG, PNG, BMP, WebP or GIF; InputError for anything else."""
    size: tuple[int, int] | None = None
    fmt = "?"
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and len(data) >= 24:
        fmt, size = "PNG", struct.unpack(">II", data[16:24])
    elif data[:3] == b"\xff\xd8\xff":
        fmt, size = "JPEG", _jpeg_size(data)
    elif data[:2] == b"BM" and len(data) >= 26:
        header = struct.unpack("<I", data[14:18])[0]
        w, h = struct.unpack("<HH", data[18:22]) if header == 12 else struct.unpack("<ii", data[18:26])
        fmt, size = "BMP", (abs(w), abs(h))
    elif data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        fmt, size = "WebP", _webp_size(data)
    elif data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        fmt, size = "GIF", struct.unpack("<HH", data[6:10])
    if size is None:
        got = f"a {fmt} file with no readable size" if fmt != "?" else f"{len(data)} bytes starting {data[:16]!r}"
        raise InputError(f"expected an image ({FORMATS}), got {got}; they do not decode as one")
    return fmt, int(size[0]), int(size[1])


def decode_image(data: bytes, max_pixels: int) -> NDArray[np.uint8]:
    """Bytes of a JPEG/PNG/BMP/WebP image -> BGR array. InputError for a non-image or one under 8x8 pixels,
    TooLargeError (before decoding) for one over `max_pixels`."""
    if not data:
        raise InputError("expected an image, got an empty upload")
    fmt, w, h = image_size(data)
    if w * h > max_pixels:
        raise TooLargeError(f"image of {w}x{h} pixels ({fmt}) is over the limit of {max_pixels} pixels")
    if w < 8 or h < 8:
        raise InputError(f"image too small to hold a person: {w}x{h} pixels")
    import cv2  # here, not at the top: reading a header (image_size) needs no OpenCV

    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise InputError(f"expected an image ({FORMATS}), got a {w}x{h} {fmt} file that does not decode")
    if img.shape[0] * img.shape[1] > max_pixels or img.shape[0] < 8 or img.shape[1] < 8:  # header and data disagree
        raise InputError(f"{fmt} header says {w}x{h} pixels, the image decodes to {img.shape[1]}x{img.shape[0]}")
    return np.asarray(img, np.uint8)
