"""Image -> network blob, the one implementation every family uses.

Follows the registry's `Preprocess` recipe: resize (letterbox, stretch or none), then
``value = (pixel - mean) * scale / std`` per channel, with optional BGR -> RGB swap.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

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
    """

    image_wh: tuple[int, int]
    input_wh: tuple[int, int]
    ratio: float = 1.0


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
    if pre.resize == "letterbox":
        image, ratio = letterbox(image, pre.input_wh, pre.pad_value)
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
    return out, Meta(image_wh=(w, h), input_wh=input_wh, ratio=ratio)
