"""YuNet face detector with 5 landmarks, family ``yunet``, run by ``cv2.FaceDetectorYN``.

FaceDetectorYN does its own input scaling, prior decoding, score threshold and NMS, and wants an
H×W×3 uint8 image. To keep the `Adapter` stages uniform, the "blob" YuNet passes from preprocess
to infer is the image itself at its own size in N×C×H×W float32 layout (values 0..255, no
scaling: exact in float32), and `FaceDetectorEngine.forward` turns it back into an image for
``detect``. The copy costs well under a millisecond at 640×480 and lets tests and tools treat
every family alike. Output rows: [x, y, w, h, 5 × (x, y) landmarks, score] in image pixels.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from framefleet.core.errors import ConfigError, ModelLoadError
from framefleet.core.registry import ModelSpec, Preprocess
from framefleet.core.results import Detections
from framefleet.inference.models.base import Adapter, Blob, Engine, Meta, RawOutputs
from framefleet.inference.models.nms import named_output, to_detections

ROW = 15
"""Floats per face row: box (4), landmarks (10), score (1)."""


class FaceDetectorEngine:
    """`Engine` backed by ``cv2.FaceDetectorYN``; forward takes the image as a 1×3×H×W blob.

    The detector is re-sized per image with ``setInputSize``, so one engine serves any size.
    """

    name = "cv2.FaceDetectorYN"
    version = cv2.__version__

    def __init__(self, detector: cv2.FaceDetectorYN) -> None:
        self.detector = detector
        self.output_names = ["faces"]
        self.max_batch = 1

    def forward(self, blob: Blob) -> RawOutputs:
        """Faces found in the image ``blob`` holds, as ``{"faces": (N, 15) float32}``."""
        image = np.ascontiguousarray(blob[0].transpose(1, 2, 0)).astype(np.uint8)
        h, w = image.shape[:2]
        self.detector.setInputSize((w, h))
        _, faces = self.detector.detect(image)
        # detect() gives None, not an empty array, when it finds no face.
        rows = np.empty((0, ROW), np.float32) if faces is None else np.asarray(faces, np.float32)
        return {"faces": rows.reshape(-1, ROW)}


def decode_yunet(
    faces: npt.NDArray[np.float32],
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Split (N, 15) rows into xyxy (N, 4), scores (N,) and landmarks (N, 5, 2)."""
    faces = faces.reshape(-1, ROW)
    xyxy = np.concatenate([faces[:, :2], faces[:, :2] + faces[:, 2:4]], axis=1)
    return xyxy, faces[:, 14], faces[:, 4:14].reshape(-1, 5, 2)


class YunetAdapter(Adapter):
    """YuNet through ``cv2.FaceDetectorYN`` at each image's own size; one class, ``face``.

    Example:
        >>> adapter = load_adapter(registry.get("yunet"), store)
        >>> adapter(image).landmarks.shape
        (4, 5, 2)
    """

    family = "yunet"
    engines = ("cv2.FaceDetectorYN",)

    def __init__(self, spec: ModelSpec, engine: Engine, labels: list[str]) -> None:
        # The registry gives no labels file for a one-class detector.
        super().__init__(spec, engine, labels or ["face"])

    @classmethod
    def build_engine(
        cls,
        spec: ModelSpec,
        files: dict[str, Path],
        engine: str = "cv2.FaceDetectorYN",
        threads: int = 1,
    ) -> Engine:
        """A `FaceDetectorEngine` with the registry's thresholds (``engine`` is ignored: YuNet's
        decoding lives inside ``cv2.FaceDetectorYN``).

        Raises:
            ConfigError: the preprocess entry asks for scaling FaceDetectorYN does not allow.
            ModelLoadError: OpenCV refused the file.
        """
        pre, post = spec.preprocess, spec.postprocess
        # FaceDetectorYN scales its input itself: our blob must be the untouched image.
        if pre != Preprocess(pre.input_wh, resize="none", pad_value=pre.pad_value):
            raise ConfigError(
                f"model {spec.name!r}: FaceDetectorYN scales its input itself; its preprocess "
                f"must be resize='none' without scale/mean/std/swap_rb, got {pre}"
            )
        # FaceDetectorYN asks for a CPU target, which OpenCV 5's graph engine answers with a WARN
        # line on stderr in every worker and run (issue 30, item 9): nothing is wrong, it runs
        # on the CPU either way, so its creation runs with OpenCV's log at ERROR.
        level = cv2.utils.logging.getLogLevel()
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
        try:
            detector = cv2.FaceDetectorYN.create(
                str(files["model"]),
                "",
                pre.input_wh,
                post.score_threshold,
                post.nms_threshold,
                post.top_k,
            )
        except cv2.error as exc:
            raise ModelLoadError(
                f"cv2.FaceDetectorYN (OpenCV {cv2.__version__}) could not read {files['model']}: "
                f"{str(exc).strip().splitlines()[-1]}"
            ) from exc
        finally:
            cv2.utils.logging.setLogLevel(level)
        return FaceDetectorEngine(detector)

    def postprocess(self, raw: RawOutputs, meta: Meta) -> Detections:
        xyxy, scores, landmarks = decode_yunet(named_output(raw, "faces"))
        return to_detections(
            xyxy,
            scores,
            np.zeros(len(scores), np.int32),
            image_wh=meta.image_wh,
            label=self.label,
            landmarks=landmarks,
        )
