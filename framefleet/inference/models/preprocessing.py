"""Image -> network blob, the one implementation every family uses.

Follows the registry's `Preprocess` recipe: resize (letterbox, stretch or none), then
``value = (pixel - mean) * scale / std`` per channel, with optional BGR -> RGB swap.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image as Pil

from framefleet.core.registry import Preprocess
from framefleet.inference.engines import Blob

Image = npt.NDArray[np.uint8]
"""A decoded BGR image, H×W×3 uint8 (OpenCV's layout)."""


@dataclass(frozen=True)
class Meta:
    """What postprocess needs to map network coordinates back to the image.

    Attributes:
        image_wh: original image width and height, pixels.
        ratio: letterbox scale factor (network pixels per image pixel); 1.0 when unused.
        input_wh: network input width and height, pixels.
        pad_xy: padding left of and above the image in the input, pixels (centred letterbox).
        gain_xy: input pixels per image pixel along x and along y, where rounding the scaled
            size makes them differ from ``ratio`` (centred letterbox); None: ``ratio`` both.
    """

    image_wh: tuple[int, int]
    input_wh: tuple[int, int]
    ratio: float = 1.0
    pad_xy: tuple[int, int] = (0, 0)
    gain_xy: tuple[float, float] | None = None

    def to_image(self, points: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Input-pixel coordinates -> image pixels: (..., 2k) arrays of x, y pairs (boxes as
        x1 y1 x2 y2, points as x y), undoing the letterbox's padding and scale."""
        pairs = points.shape[-1] // 2
        pad = np.tile(np.asarray(self.pad_xy, np.float32), pairs)
        gain = np.tile(np.asarray(self.gain_xy or (self.ratio, self.ratio), np.float32), pairs)
        return ((points - pad) / gain).astype(np.float32)


def letterbox(image: Image, input_wh: tuple[int, int], pad_value: float) -> tuple[Image, float]:
    """Scale ``image`` to fit ``input_wh`` keeping its aspect ratio, pad bottom and right.

    The image sits at the top-left corner, so mapping network coordinates back is a plain
    division by ``ratio`` (no offset), as the YOLOX reference does.

    Args:
        image: H×W×3 uint8 BGR image.
        input_wh: network input width and height, pixels.
        pad_value: value of the padding pixels (YOLOX uses 114).

    Returns:
        The padded input_h×input_w×3 image and the ratio (network pixels per image pixel).

    Example:
        >>> padded, ratio = letterbox(np.zeros((576, 768, 3), np.uint8), (416, 416), 114)
        >>> padded.shape, round(ratio, 4)
        ((416, 416, 3), 0.5417)
    """
    in_w, in_h = input_wh
    h, w = image.shape[:2]
    ratio = min(in_w / w, in_h / h)
    # int() truncates exactly as the YOLOX reference (``int(img.shape[1] * r)``) does, so
    # 773 * (416 / 773) = 415.99999... gives 415 there and here; max(1, ...) keeps a 1-pixel
    # sliver non-empty.
    new_w = max(1, int(w * ratio))
    new_h = max(1, int(h * ratio))
    padded = np.full((in_h, in_w, image.shape[2]), pad_value, dtype=np.uint8)
    padded[:new_h, :new_w] = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    return padded, ratio


def letterbox_centered(
    image: Image, input_wh: tuple[int, int], pad_value: float, stride: int = 0
) -> tuple[Image, float, tuple[int, int]]:
    """Scale ``image`` to fit ``input_wh`` keeping its aspect ratio, pad evenly on all sides.

    Rounds as Ultralytics' ``LetterBox(center=True)`` does (the scaled size with ``round``, the
    left/top padding with ``round(pad / 2 - 0.1)``), so its models see the input they were
    validated on and boxes map back to the same pixels.

    With ``stride`` the padding stops at the next multiple of ``stride`` (Ultralytics' ``auto``
    rectangle, for files that take any input size): a 768×576 photo at 320 becomes 320×256, not
    320×320.

    Returns:
        The padded image, the ratio (network pixels per image pixel) and the left and top
        padding, pixels.

    Example:
        >>> image = np.zeros((576, 768, 3), np.uint8)
        >>> padded, ratio, pad = letterbox_centered(image, (320, 320), 114)
        >>> padded.shape, round(ratio, 4), pad
        ((320, 320, 3), 0.4167, (0, 40))
    """
    in_w, in_h = input_wh
    h, w = image.shape[:2]
    ratio = min(in_w / w, in_h / h)
    new_w, new_h = max(round(w * ratio), 1), max(round(h * ratio), 1)
    if stride:
        in_w, in_h = new_w + (in_w - new_w) % stride, new_h + (in_h - new_h) % stride
    left, top = round((in_w - new_w) / 2 - 0.1), round((in_h - new_h) / 2 - 0.1)
    padded = np.full((in_h, in_w, image.shape[2]), pad_value, dtype=np.uint8)
    if (new_w, new_h) != (w, h):
        image = np.asarray(cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR))
    padded[top : top + new_h, left : left + new_w] = image
    return padded, ratio, (left, top)


def center_crop(image: Image, input_wh: tuple[int, int], crop_fraction: float) -> Image:
    """Scale the shorter side to ``input / crop_fraction``, then cut ``input_wh`` out of the centre.

    The resize is Pillow's antialiased bilinear, the one torchvision's ``Resize`` and
    Ultralytics' classifiers use on their PIL images: OpenCV's ``INTER_LINEAR`` skips pixels when
    it shrinks, and a classifier's scores move with it.

    Example:
        >>> center_crop(np.zeros((576, 768, 3), np.uint8), (224, 224), 0.875).shape
        (224, 224, 3)
    """
    in_w, in_h = input_wh
    h, w = image.shape[:2]
    short = int(min(in_w, in_h) / crop_fraction)
    # torchvision's Resize(int): the shorter side becomes ``short``, the longer one truncates.
    size = (short, int(short * h / w)) if w <= h else (int(short * w / h), short)
    resized = np.asarray(Pil.fromarray(image).resize(size, Pil.Resampling.BILINEAR))
    top = round((size[1] - in_h) / 2.0)
    left = round((size[0] - in_w) / 2.0)
    return np.ascontiguousarray(resized[top : top + in_h, left : left + in_w])


def to_blob(image: Image, pre: Preprocess) -> tuple[Blob, Meta]:
    """Turn a BGR image into the 1×3×H×W float32 blob ``pre`` describes.

    Args:
        image: H×W×3 uint8 BGR image.
        pre: the model's preprocessing recipe; ``resize="none"`` keeps the image's own size.

    Returns:
        The blob and the `Meta` postprocess needs to map outputs back to image pixels.

    Raises:
        ValueError: ``image`` is not H×W×3.

    Example:
        >>> blob, meta = to_blob(image, spec.preprocess)
        >>> blob.shape, meta.ratio
        ((1, 3, 416, 416), 0.5417)
    """
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(
            f"image must be H×W×3 BGR, got shape {image.shape}; decode with IMREAD_COLOR"
        )
    h, w = image.shape[:2]
    ratio = 1.0
    pad = (0, 0)
    gain: tuple[float, float] | None = None
    if pre.resize == "letterbox" and pre.center:
        image, ratio, pad = letterbox_centered(image, pre.input_wh, pre.pad_value, pre.stride)
        input_wh = (image.shape[1], image.shape[0])
        # the scaled size was rounded: its true gains are what maps outputs back exactly
        gain = (max(round(w * ratio), 1) / w, max(round(h * ratio), 1) / h)
    elif pre.resize == "letterbox":
        image, ratio = letterbox(image, pre.input_wh, pre.pad_value)
        input_wh = pre.input_wh
    elif pre.resize == "crop":
        image = center_crop(image, pre.input_wh, pre.crop_fraction)
        input_wh = pre.input_wh
    elif pre.resize == "stretch":
        input_wh = pre.input_wh
    else:
        input_wh = (w, h)
    # blobFromImage resizes (bilinear) when the size differs, subtracts mean, then scales.
    blob = cv2.dnn.blobFromImage(
        image, scalefactor=pre.scale, size=input_wh, mean=pre.mean, swapRB=pre.swap_rb, crop=False
    )
    out = np.asarray(blob, dtype=np.float32)
    if pre.std != (1.0, 1.0, 1.0):
        # std is in the blob's channel order, like mean (after any swap).
        out = out / np.asarray(pre.std, np.float32).reshape(1, 3, 1, 1)
    return out, Meta(image_wh=(w, h), input_wh=input_wh, ratio=ratio, pad_xy=pad, gain_xy=gain)
