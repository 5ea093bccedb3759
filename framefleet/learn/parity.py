"""Parity of an export: the ONNX file run through ``cv2.dnn`` must give the training side's class
probabilities on the held-out images, within a stated tolerance, or the export is refused."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from framefleet.core.errors import ExportCheckError
from framefleet.core.registry import Preprocess
from framefleet.inference.engines import CvDnnEngine
from framefleet.inference.models.base import Image
from framefleet.inference.models.preprocessing import to_blob


@dataclass(frozen=True)
class ParityReport:
    """How close the export came to the training side.

    Attributes:
        items: held-out images compared.
        max_abs_diff, mean_abs_diff: of the class probabilities, over all items and classes.
        top1_agreement: share of items whose best class is the same on both sides.
        atol: the tolerance the export had to meet.
    """

    items: int
    max_abs_diff: float
    mean_abs_diff: float
    top1_agreement: float
    atol: float

    def to_json(self) -> dict[str, Any]:
        """For metrics.json."""
        return asdict(self)


def cv_dnn_probabilities(
    model_path: Path, preprocess: Preprocess, images: Iterable[Image]
) -> npt.NDArray[np.float32]:
    """(N, C) ``output`` of ``model_path`` through ``cv2.dnn`` for each image (the registry's
    preprocessing recipe, as the workers apply it)."""
    # OpenCV 5 wants every output asked for: both, by name (their order differs across versions)
    engine = CvDnnEngine(CvDnnEngine.from_file(model_path).net, ["output", "embedding"])
    rows = [engine.forward(to_blob(image, preprocess)[0])["output"].reshape(-1) for image in images]
    return np.stack(rows).astype(np.float32)


def check_parity(
    model_path: Path,
    preprocess: Preprocess,
    images: Iterable[Image],
    expected: npt.NDArray[np.floating[Any]],
    atol: float,
) -> ParityReport:
    """Run the export through ``cv2.dnn`` and compare with ``expected``.

    Args:
        model_path: the exported ONNX file.
        preprocess: how images become its input blob.
        images: the held-out images, in the order of ``expected``'s rows.
        expected: (N, C) probabilities the training side gives for them.
        atol: largest absolute difference allowed.

    Returns:
        The figures, when the export passes.

    Raises:
        ExportCheckError: a difference above ``atol`` or a shape mismatch; the message has the
            numbers.

    Example:
        >>> check_parity(out / "model.onnx", spec.preprocess, held_images, head_probs, 1e-4)
        ParityReport(items=18, max_abs_diff=3.2e-07, ...)
    """
    got = cv_dnn_probabilities(model_path, preprocess, images).astype(np.float64)
    want = np.asarray(expected, np.float64)
    if got.shape != want.shape:
        raise ExportCheckError(
            f"{model_path} gives outputs of shape {got.shape} through cv2.dnn, the training side "
            f"{want.shape}; the export is refused"
        )
    diff = np.abs(got - want)
    report = ParityReport(
        items=len(got),
        max_abs_diff=float(diff.max()) if diff.size else 0.0,
        mean_abs_diff=float(diff.mean()) if diff.size else 0.0,
        top1_agreement=float(np.mean(got.argmax(1) == want.argmax(1))) if len(got) else 1.0,
        atol=atol,
    )
    if report.max_abs_diff > atol:
        raise ExportCheckError(
            f"{model_path} through cv2.dnn differs from the training side on {report.items} "
            f"held-out images: max |Δp| {report.max_abs_diff:.3g} > tolerance {atol:g} "
            f"(mean {report.mean_abs_diff:.3g}, same top-1 class on "
            f"{report.top1_agreement:.0%}); the export is refused"
        )
    return report
