"""decode_image / encode_image: real files, crafted headers, and one precise error per bad input."""

from __future__ import annotations

import struct

import cv2
import numpy as np
import pytest
from helpers import IMAGES_DIR

from framefleet.core.errors import ImageDecodeError, InputError
from framefleet.inference.imageio import decode_image, encode_image

URI = "s3://bucket/photos/x.jpg"
DOG = (IMAGES_DIR / "darknet_dog.jpg").read_bytes()


def _encoded(ext: str, image: np.ndarray | None = None, params: list[int] | None = None) -> bytes:
    image = np.full((8, 12, 3), 90, np.uint8) if image is None else image
    ok, buf = cv2.imencode(ext, image, params or [])
    assert ok
    return buf.tobytes()


def _patch(data: bytes, offset: int, fmt: str, *values: int) -> bytes:
    """``data`` with ``values`` packed at ``offset`` (a crafted header)."""
    packed = struct.pack(fmt, *values)
    return data[:offset] + packed + data[offset + len(packed) :]


def _jpeg_sof_offset(data: bytes) -> int:
    return data.index(b"\xff\xc0")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        # nothing uploaded
        pytest.param(
            b"", r"cannot decode s3://bucket/photos/x\.jpg \(0 bytes\): 0 bytes", id="empty"
        ),
        # text, not an image: the message shows what was seen
        pytest.param(
            b"hello, this is not an image",
            r"\(27 bytes\): starts with b'hello, this '\.\.\. — not an image format "
            r"OpenCV reads \(JPEG, PNG, BMP, WebP, TIFF\.\.\.\)",
            id="text",
        ),
        # a JPEG cut short
        pytest.param(
            DOG[:2000],
            r"\(2000 bytes\): looks like JPEG but OpenCV cannot decode it",
            id="truncated-jpeg",
        ),
        # a JPEG header followed by garbage
        pytest.param(
            DOG[:600] + bytes(5000),
            r"looks like JPEG but OpenCV cannot decode it",
            id="corrupt-jpeg",
        ),
        # a PNG signature and nothing else
        pytest.param(b"\x89PNG\r\n\x1a\n", r"\(8 bytes\): looks like PNG", id="png-signature-only"),
        # decompression bombs: headers claiming gigapixels are refused before decoding
        pytest.param(
            _patch(_encoded(".png"), 16, ">II", 100_000, 100_000),
            r"PNG of 100000×100000 = 10000\.0 MP is above the 100\.0 MP limit",
            id="huge-png",
        ),
        # a JPEG whose start-of-frame claims 60000×60000
        pytest.param(
            _patch(DOG, _jpeg_sof_offset(DOG) + 5, ">HH", 60_000, 60_000),
            r"JPEG of 60000×60000 = 3600\.0 MP is above the 100\.0 MP limit",
            id="huge-jpeg",
        ),
        # a BMP with a negative (top-down) height
        pytest.param(
            _patch(_encoded(".bmp"), 18, "<ii", 20_000, -20_000),
            r"BMP of 20000×20000 = 400\.0 MP",
            id="huge-bmp-top-down",
        ),
        # a GIF screen descriptor of 30000×30000
        pytest.param(
            b"GIF89a" + struct.pack("<HH", 30_000, 30_000) + bytes(20),
            r"GIF of 30000×30000 = 900\.0 MP",
            id="huge-gif",
        ),
        # a lossy WebP (VP8) frame header of 16000×16000
        pytest.param(
            _patch(
                _encoded(".webp", params=[cv2.IMWRITE_WEBP_QUALITY, 80]), 26, "<HH", 16_000, 16_000
            ),
            r"WebP of 16000×16000 = 256\.0 MP",
            id="huge-webp",
        ),
        # a TIFF whose first IFD claims 40000×40000: refused from the header, not decoded
        pytest.param(
            _patch(
                _encoded(".tiff"),
                _encoded(".tiff").index(struct.pack("<HHIH", 256, 3, 1, 12)),
                "<HHIIHHII",
                256,
                4,
                1,
                40_000,
                257,
                4,
                1,
                40_000,
            ),
            r"TIFF of 40000×40000 = 1600\.0 MP",
            id="huge-tiff",
        ),
        # an HTML error page saved under an image name
        pytest.param(
            b"<!DOCTYPE html><html><body>404</body></html>",
            r"not an image format OpenCV reads .*; it is HTML/XML text",
            id="html",
        ),
    ],
)
def test_bad_bytes_give_one_precise_error(data, message):
    with pytest.raises(ImageDecodeError, match=message) as info:
        decode_image(data, URI)
    assert URI in str(info.value)
    assert f"({len(data)} bytes)" in str(info.value)
    assert isinstance(info.value, InputError)  # recorded as a failed item, never retried


def test_decoded_size_checked_where_header_is_not_parsed():
    # TIFF headers are not parsed; the decoded size is checked instead.
    data = _encoded(".tiff", np.zeros((100, 100, 3), np.uint8))
    with pytest.raises(ImageDecodeError, match=r"TIFF of 100×100 = 0\.0 MP is above the 0\.0 MP"):
        decode_image(data, URI, max_pixels=5_000)


@pytest.mark.parametrize(
    ("image", "ext"),
    [
        # one channel -> three
        pytest.param(np.full((6, 9), 77, np.uint8), ".png", id="grayscale"),
        # alpha dropped
        pytest.param(
            np.dstack([np.full((6, 9, 3), 77, np.uint8), np.zeros((6, 9), np.uint8)]),
            ".png",
            id="bgra",
        ),
        # 16-bit scaled to 8-bit
        pytest.param(np.full((6, 9, 3), 77 * 257, np.uint16), ".png", id="16-bit"),
    ],
)
def test_any_image_becomes_bgr_uint8(image, ext):
    decoded = decode_image(_encoded(ext, image), URI)
    assert decoded.shape == (6, 9, 3)
    assert decoded.dtype == np.uint8
    assert (decoded == 77).all()


def test_real_jpeg():
    assert decode_image(DOG, URI).shape == (576, 768, 3)


@pytest.mark.parametrize("ext", [".jpg", ".JPG", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"])
def test_encode_round_trip(ext):
    image = np.zeros((40, 60, 3), np.uint8)
    image[10:30, 20:40] = (0, 128, 255)
    decoded = decode_image(encode_image(image, ext), f"out{ext}")
    assert decoded.shape == image.shape
    assert np.abs(decoded.astype(int) - image).mean() < 3  # lossy formats stay close


def test_encode_png_is_lossless_and_quality_matters_for_jpeg():
    image = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    assert (decode_image(encode_image(image, ".png"), "x.png") == image).all()
    assert len(encode_image(image, ".jpg", quality=20)) < len(encode_image(image, ".jpg", 95))


@pytest.mark.parametrize(
    ("ext", "quality", "message"),
    [
        # GIF is not an output format: the caller picks a fallback
        pytest.param(".gif", 90, r"cannot encode as '\.gif'; supported: \.jpg, \.jpeg", id="gif"),
        pytest.param("", 90, r"cannot encode as ''", id="no-extension"),
        pytest.param(".jpg", 101, r"quality must be 0-100, got 101", id="quality"),
    ],
)
def test_encode_rejects(ext, quality, message):
    with pytest.raises(ValueError, match=message):
        encode_image(np.zeros((4, 4, 3), np.uint8), ext, quality)


def test_encode_unencodable_image_is_a_value_error():
    with pytest.raises(ValueError, match=r"as \.jpg"):
        encode_image(np.zeros((0, 0, 3), np.uint8), ".jpg")
