"""Bytes <-> images, with errors that say which object failed and why.

``decode_image`` turns ``cv2.imdecode``'s silent ``None`` into an `ImageDecodeError` naming the
URI, the size and what the bytes looked like; ``encode_image`` writes the format the extension
names.
"""

from __future__ import annotations

import logging
import struct
from pathlib import Path

import cv2
import numpy as np

from framefleet.core import defaults
from framefleet.core.errors import ImageDecodeError
from framefleet.inference.decoder_warnings import decoder_warnings
from framefleet.inference.models.base import Image

log = logging.getLogger(__name__)

_MAGIC = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"BM", "BMP"),
    (b"GIF8", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)

_ENCODE_PARAMS = {
    ".jpg": cv2.IMWRITE_JPEG_QUALITY,
    ".jpeg": cv2.IMWRITE_JPEG_QUALITY,
    ".webp": cv2.IMWRITE_WEBP_QUALITY,
    ".png": None,
    ".bmp": None,
    ".tif": None,
    ".tiff": None,
}


def decode_image(
    data: bytes,
    uri: str,
    *,
    max_pixels: int = defaults.MAX_PIXELS,
    warnings: list[str] | None = None,
) -> Image:
    """Decode encoded image bytes to an H×W×3 uint8 BGR image.

    Grayscale and alpha images are converted to 3-channel BGR, 16-bit ones to 8-bit, CMYK JPEGs to
    BGR, and EXIF orientation is applied (``cv2.IMREAD_COLOR``), so the result is the upright
    image. Files holding several frames (animated GIF, PNG or WebP, multi-page TIFF) give their
    first frame or page.

    Args:
        data: the file's bytes.
        uri: where they came from; only used in error messages.
        max_pixels: refuse images with more pixels than this (header checked before decoding
            for JPEG, PNG, BMP, GIF, WebP and TIFF).
        warnings: where the decoder's complaints about damage it decoded through go ("Corrupt
            JPEG data: ..."); without a list they are logged, naming ``uri``. Never on stderr.

    Returns:
        The decoded image.

    Raises:
        ImageDecodeError: empty bytes, not an image format OpenCV reads, corrupt or truncated
            data, or more than ``max_pixels`` pixels; the message names ``uri`` and the size.

    Example:
        >>> image = decode_image(Path("dog.jpg").read_bytes(), "file://dog.jpg")
        >>> image.shape
        (576, 768, 3)
    """
    where = f"cannot decode {uri} ({len(data)} bytes)"
    if not data:
        raise ImageDecodeError(f"{where}: 0 bytes; expected an image file (empty upload?)")
    kind = _kind(data)
    # Peek at the header first: a few hundred crafted bytes can claim gigapixels.
    wh = None if kind is None else _header_wh(data, kind)
    if wh is not None and wh[0] * wh[1] > max_pixels:
        raise ImageDecodeError(_too_big(where, kind or "image", wh, max_pixels))
    try:
        with decoder_warnings() as complaints:
            image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error as exc:  # e.g. above OpenCV's own pixel limit, for formats we cannot peek
        raise ImageDecodeError(f"{where}: OpenCV refused it: {_last_line(exc)}") from exc
    if complaints and image is not None:
        if warnings is None:
            log.warning("%s decoded with damage: %s", uri, "; ".join(complaints))
        else:
            warnings.extend(complaints)
    if image is None and kind is None:
        raise ImageDecodeError(
            f"{where}: starts with {data[:12]!r}... — not an image format OpenCV reads "
            f"(JPEG, PNG, BMP, WebP, TIFF...){_text_hint(data)}; replace it with the real image "
            "or remove it from the input"
        )
    if image is None:
        raise ImageDecodeError(
            f"{where}: looks like {kind} but OpenCV cannot decode it (truncated or corrupt?); "
            "upload the complete file again or re-export it"
        )
    h, w = image.shape[:2]
    if w * h > max_pixels:
        raise ImageDecodeError(_too_big(where, kind or "image", (w, h), max_pixels))
    return np.asarray(image, np.uint8)


def read_image(path: str | Path, *, max_pixels: int = defaults.MAX_PIXELS) -> Image:
    """Read and decode the image file at ``path`` (same rules as `decode_image`).

    Raises:
        ImageDecodeError: the file is missing, unreadable or not a decodable image.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageDecodeError(f"cannot read image {path}: {exc.strerror or exc}") from exc
    return decode_image(data, str(path), max_pixels=max_pixels)


def encode_image(image: Image, ext: str = ".jpg", quality: int = defaults.JPEG_QUALITY) -> bytes:
    """Encode an image in the format ``ext`` names.

    Args:
        image: H×W×3 (or H×W) uint8 BGR image.
        ext: ``.jpg``/``.jpeg``, ``.png``, ``.webp``, ``.bmp``, ``.tif``/``.tiff`` (any case).
        quality: 0-100, used by JPEG and WebP only.

    Returns:
        The encoded file's bytes.

    Raises:
        ValueError: an unsupported extension, a quality outside 0-100, or an image OpenCV
            cannot encode (the caller decides on a fallback).

    Example:
        >>> encode_image(image, ".png")[:4]
        b'\\x89PNG'
    """
    key = ext.lower() if ext.startswith(".") else f".{ext.lower()}"
    if key not in _ENCODE_PARAMS:
        raise ValueError(f"cannot encode as {ext!r}; supported: {', '.join(_ENCODE_PARAMS)}")
    if not 0 <= quality <= 100:
        raise ValueError(f"quality must be 0-100, got {quality}")
    flag = _ENCODE_PARAMS[key]
    params = [] if flag is None else [flag, int(quality)]
    try:
        ok, buf = cv2.imencode(key, image, params)
    except cv2.error as exc:
        raise ValueError(
            f"cannot encode a {image.dtype} image of shape {image.shape} as {key}: "
            f"{_last_line(exc)}"
        ) from exc
    if not ok:
        raise ValueError(f"OpenCV could not encode a {image.dtype} {image.shape} image as {key}")
    return buf.tobytes()


def _kind(data: bytes) -> str | None:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    return next((name for magic, name in _MAGIC if data.startswith(magic)), None)


def _text_hint(data: bytes) -> str:
    """What non-image bytes look like, when it helps the user find the mistake."""
    head = data[:512].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html", b"<?xml", b"<head", b"<body")):
        return "; it is HTML/XML text, e.g. an error page saved under an image name"
    if all(32 <= b < 127 or b in b"\t\r\n" for b in head):
        return "; it is plain text"
    return ""


def _header_wh(data: bytes, kind: str) -> tuple[int, int] | None:
    """Width and height read from the header without decoding; None where we do not parse it
    (decode_image then checks the decoded size instead)."""
    try:
        if kind == "PNG":
            w, h = struct.unpack(">II", data[16:24])
        elif kind == "GIF":
            w, h = struct.unpack("<HH", data[6:10])
        elif kind == "BMP":
            w, h = struct.unpack("<ii", data[18:26])  # negative height = rows top-down
        elif kind == "JPEG":
            return _jpeg_wh(data)
        elif kind == "WebP":
            return _webp_wh(data)
        elif kind == "TIFF":
            return _tiff_wh(data)
        else:
            return None
    except struct.error:  # shorter than its header: imdecode will call it corrupt
        return None
    return abs(w), abs(h)


def _webp_wh(data: bytes) -> tuple[int, int] | None:
    """Size from a VP8X, VP8 (lossy) or VP8L (lossless) chunk header."""
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    if chunk == b"VP8 " and len(data) >= 30:
        w, h = struct.unpack("<HH", data[26:30])
        return w & 0x3FFF, h & 0x3FFF
    if chunk == b"VP8L" and len(data) >= 25:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None


def _tiff_wh(data: bytes) -> tuple[int, int] | None:
    """Size of the first page from IFD0's ImageWidth (256) and ImageLength (257) tags; classic
    TIFF only (BigTIFF gives None)."""
    order = "<" if data[:2] == b"II" else ">"
    (offset,) = struct.unpack(order + "I", data[4:8])
    (count,) = struct.unpack(order + "H", data[offset : offset + 2])
    size: dict[int, int] = {}
    for i in range(count):
        entry = data[offset + 2 + 12 * i : offset + 14 + 12 * i]
        tag, kind = struct.unpack(order + "HH", entry[:4])
        if tag in (256, 257):  # SHORT (type 3) or LONG (4), held in the entry's value field
            fmt, end = ("H", 10) if kind == 3 else ("I", 12)
            size[tag] = struct.unpack(order + fmt, entry[8:end])[0]
    if 256 in size and 257 in size:
        return size[256], size[257]
    return None


def _jpeg_wh(data: bytes) -> tuple[int, int] | None:
    """Size from the first start-of-frame marker (SOF0-SOF15 except DHT, JPG and DAC)."""
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            h, w = struct.unpack(">HH", data[i + 5 : i + 9])
            return w, h
        i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
    return None


def _too_big(where: str, kind: str, wh: tuple[int, int], max_pixels: int) -> str:
    w, h = wh
    return (
        f"{where}: {kind} of {w}×{h} = {w * h / 1e6:.1f} MP is above the "
        f"{max_pixels / 1e6:.1f} MP limit; downscale it or raise max_pixels"
    )


def _last_line(exc: cv2.error) -> str:
    return str(exc).strip().splitlines()[-1]
