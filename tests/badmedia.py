"""Bad and unusual inputs, built at test time from the shared media (nothing generated is committed).

Each builder returns the bytes of one file. OpenCV writes most of them; Pillow writes what OpenCV
cannot (CMYK JPEG, an EXIF orientation tag).
"""

from __future__ import annotations

import io
import struct
import zlib

import cv2
import numpy as np
from helpers import IMAGES_DIR, MEDIA_DIR, read_image
from PIL import Image

DOG_JPEG = (IMAGES_DIR / "darknet_dog.jpg").read_bytes()
FASTSTART_MP4 = MEDIA_DIR / "video" / "intel_one-by-one-person-detection.mp4"
"""A shared video whose index (moov) comes first, so a truncated copy still opens."""


def encode(ext: str, image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(ext, image)
    assert ok, f"OpenCV could not encode {ext}"
    return buf.tobytes()


def dog() -> np.ndarray:
    return read_image("darknet_dog.jpg")


def truncated_jpeg() -> bytes:
    return DOG_JPEG[: len(DOG_JPEG) * 6 // 10]


def truncated_png() -> bytes:
    png = encode(".png", dog())
    return png[: len(png) // 2]


def html_page() -> bytes:
    return b"<!DOCTYPE html>\n<html><head><title>403 Forbidden</title></head><body>no</body></html>"


def png_bomb(width: int = 30_000, height: int = 30_000) -> bytes:
    """A valid-looking PNG of a few KB whose header claims ``width`` × ``height`` RGB pixels: the
    IHDR CRC is right and the IDAT holds the first rows of zeros, compressed."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = zlib.compress(bytes((3 * width + 1) * 16), 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


def png_16bit() -> bytes:
    return encode(".png", dog().astype(np.uint16) * 257)


def grayscale_jpeg() -> bytes:
    return encode(".jpg", cv2.cvtColor(dog(), cv2.COLOR_BGR2GRAY))


def rgba_png() -> bytes:
    image = dog()
    alpha = np.full(image.shape[:2], 128, np.uint8)
    return encode(".png", np.dstack([image, alpha]))


def _pil_dog() -> Image.Image:
    return Image.fromarray(cv2.cvtColor(dog(), cv2.COLOR_BGR2RGB))


def cmyk_jpeg() -> bytes:
    buf = io.BytesIO()
    _pil_dog().convert("CMYK").save(buf, "JPEG", quality=90)
    return buf.getvalue()


def exif_rotated_jpeg(orientation: int = 6) -> bytes:
    """The upright dog stored with EXIF Orientation ``orientation`` (6: a viewer turns it 90°
    clockwise), i.e. pixels that are upright only once the tag is honoured: we store the dog
    turned 90° counter-clockwise."""
    stored = _pil_dog().transpose(Image.Transpose.ROTATE_90)  # counter-clockwise
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    stored.save(buf, "JPEG", quality=92, exif=exif.tobytes())
    return buf.getvalue()


def animated_gif(frames: int = 3) -> bytes:
    animation = cv2.Animation()
    small = cv2.resize(dog(), (128, 96))
    animation.frames = [np.roll(small, 8 * i, axis=1) for i in range(frames)]
    animation.durations = [100] * frames
    ok, buf = cv2.imencodeanimation(".gif", animation)
    assert ok
    return bytes(buf)


def multipage_tiff() -> tuple[bytes, tuple[int, int]]:
    """A two-page TIFF and the (width, height) of its first page."""
    first, second = cv2.resize(dog(), (320, 240)), cv2.resize(dog(), (160, 200))
    ok, buf = cv2.imencodemulti(".tiff", [first, second])
    assert ok
    return bytes(buf), (320, 240)


def huge_jpeg(width: int = 8000, height: int = 6000) -> bytes:
    """A large but valid photo (48 MP by default)."""
    return encode(".jpg", cv2.resize(dog(), (width, height), interpolation=cv2.INTER_LINEAR))


def corrupt_video() -> bytes:
    return b"\x00\x00\x00\x18ftypmp42" + np.random.default_rng(7).bytes(20_000)


def truncated_video() -> bytes:
    """The first ~60 KB of a faststart MP4: it opens and decodes ~19 of its 1394 frames."""
    return FASTSTART_MP4.read_bytes()[:60_000]


def zero_frame_video(path: str) -> bytes:
    """An AVI with a valid header and no frame (OpenCV opens it, then reads nothing)."""
    writer = cv2.VideoWriter(path, cv2.VideoWriter.fourcc(*"MJPG"), 10, (64, 48))
    writer.release()
    with open(path, "rb") as fh:
        return fh.read()
