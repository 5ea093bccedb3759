"""Caffe MobileNet-SSD (VOC-20), family ``ssd``; Caffe loads only on OpenCV 4.x.

Output (1, 1, N, 7) from Caffe's DetectionOutput layer, rows [image_id, label, confidence, x1,
y1, x2, y2] with corners as fractions of the image. Label 0 is background, so ``class_id =
label - 1`` indexes ``voc20.names``.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from framefleet.core import defaults
from framefleet.core.errors import ModelLoadError
from framefleet.core.registry import ModelSpec, Postprocess
from framefleet.core.results import Detections
from framefleet.inference.models.base import Adapter, CvDnnEngine, Engine, Meta, RawOutputs
from framefleet.inference.models.nms import pick_output, select, to_detections

NO_CAFFE = (
    "Caffe models need OpenCV 4.x; OpenCV 5 dropped readNetFromCaffe; "
    "install opencv-python-headless<5 or use an ONNX export"
)


def decode_ssd(
    rows: npt.NDArray[np.float32], meta: Meta, post: Postprocess
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.intp]]:
    """Boxes in image pixels, scores and VOC-20 class ids from (N, 7) DetectionOutput rows.

    Rows with label 0 (background) or image_id < 0 (padding some builds emit) are dropped.
    """
    rows = rows.reshape(-1, 7)
    rows = rows[(rows[:, 0] >= 0) & (rows[:, 1] >= 1)]
    w, h = meta.image_wh
    xyxy = rows[:, 3:7] * np.array([w, h, w, h], np.float32)
    class_ids = rows[:, 1].astype(np.intp) - 1
    scores = rows[:, 2]
    # DetectionOutput already ran NMS; select() applies the registry's thresholds on top.
    keep = select(xyxy, scores, class_ids, post)
    return xyxy[keep], scores[keep], class_ids[keep]


class SsdAdapter(Adapter):
    """MobileNet-SSD on ``cv2.dnn`` from ``files["config"]`` (prototxt) and ``files["model"]``.

    Example:
        >>> adapter = load_adapter(registry.get("mobilenet-ssd"), store)  # OpenCV 4.x only
        >>> adapter(image).data["class_name"]
        array(['dog', 'bicycle', 'car'], dtype='<U7')
    """

    family = "ssd"
    engines = ("cv2.dnn",)

    @classmethod
    def check_supported(cls, spec: ModelSpec) -> None:
        """Refuse on OpenCV 5.x, which cannot read Caffe, before anything is downloaded.

        Raises:
            ModelLoadError: this OpenCV has no Caffe reader.
        """
        if not hasattr(cv2.dnn, "readNetFromCaffe"):
            raise ModelLoadError(f"model {spec.name!r} on OpenCV {cv2.__version__}: {NO_CAFFE}")

    @classmethod
    def build_engine(
        cls,
        spec: ModelSpec,
        files: dict[str, Path],
        engine: str = defaults.DEFAULT_ENGINE,
        threads: int = 1,
    ) -> Engine:
        """A ``cv2.dnn`` engine reading the Caffe prototxt and weights (Caffe is ``cv2.dnn``'s
        alone, so ``engine`` is ignored).

        Raises:
            ModelLoadError: this OpenCV cannot read Caffe (5.x), or refused the files.
        """
        cls.check_supported(spec)
        return CvDnnEngine.from_file(files["model"], files.get("config"))

    def postprocess(self, raw: RawOutputs, meta: Meta) -> Detections:
        out = pick_output(raw, lambda a: a.ndim == 4 and a.shape[-1] == 7, "1×1×N×7")
        xyxy, scores, class_ids = decode_ssd(out, meta, self.spec.postprocess)
        return to_detections(xyxy, scores, class_ids, image_wh=meta.image_wh, label=self.label)
