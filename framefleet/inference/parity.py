"""Engine parity: does a model give the same answers on ``cv2.dnn`` and on onnxruntime?

For each sample image the same blob (the adapter's own preprocessing) goes through both engines;
the raw outputs are compared by name (largest absolute difference, against the output's own
scale), then both are decoded by the same postprocess and the detections are matched by IoU
(greedy, best pairs first): score differences, class differences and detections found by one
engine only. A model whose file the second engine cannot run, whose declared input size does not
match the registry's preprocess entry, or whose outputs are not finite, fails with the reason.

Example:
    >>> report = compare_engines(registry.get("yolox-nano"), store, sample_images(images_dir))
    >>> report.ok, f"{report.max_abs_diff:.1e}"
    (True, '2.2e-04')
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from framefleet.core import defaults
from framefleet.core.errors import PipelineError
from framefleet.core.modelstore import ModelStore
from framefleet.core.registry import ModelSpec
from framefleet.core.results import Detections
from framefleet.inference.engines import OrtEngine, open_engine
from framefleet.inference.imageio import read_image
from framefleet.inference.models import load_adapter
from framefleet.inference.models.base import Adapter, Image, RawOutputs
from framefleet.inference.models.preprocessing import to_blob


@dataclass(frozen=True)
class Tolerance:
    """How far two engines may differ and still agree.

    Attributes:
        raw_rtol: largest |a - b| over an output, as a share of that output's largest |a|.
        min_iou: a detection matches its counterpart at this IoU or more.
        score_atol: largest score difference of matched detections.
        edge: a detection one engine alone finds is forgiven if its score is within this of
            the model's threshold (the other engine's copy fell just under it).
    """

    raw_rtol: float = 1e-3
    min_iou: float = 0.9
    score_atol: float = 0.01
    edge: float = 0.01

    def describe(self) -> str:
        return (
            f"raw |a-b| <= {self.raw_rtol:g} x max|a| per output; detections matched at IoU >= "
            f"{self.min_iou:g}, score diff <= {self.score_atol:g}, same class, none unmatched "
            f"(but within {self.edge:g} of the threshold)"
        )


@dataclass
class ImageParity:
    """One image under both engines."""

    image: str
    max_abs_diff: float = 0.0
    max_rel_diff: float = 0.0
    matched: int = 0
    only_a: int = 0
    only_b: int = 0
    max_score_diff: float = 0.0
    class_diffs: int = 0
    min_iou: float = 1.0
    problems: list[str] = field(default_factory=list)


@dataclass
class ModelParity:
    """One model under both engines, over the sample images."""

    model: str
    engines: tuple[str, str]
    images: list[ImageParity] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    raw_only: bool = False  # the family decodes inside OpenCV: only the network is compared

    @property
    def ok(self) -> bool:
        return not self.problems and not any(i.problems for i in self.images)

    @property
    def max_abs_diff(self) -> float:
        return max((i.max_abs_diff for i in self.images), default=0.0)

    @property
    def max_rel_diff(self) -> float:
        return max((i.max_rel_diff for i in self.images), default=0.0)

    def totals(self) -> dict[str, float]:
        """Detections matched, found by one engine only, largest score difference, class
        differences and smallest IoU of a match, over all images."""
        return {
            "matched": sum(i.matched for i in self.images),
            "only_a": sum(i.only_a for i in self.images),
            "only_b": sum(i.only_b for i in self.images),
            "max_score_diff": max((i.max_score_diff for i in self.images), default=0.0),
            "class_diffs": sum(i.class_diffs for i in self.images),
            "min_iou": min((i.min_iou for i in self.images), default=1.0),
        }


def sample_images(folder: Path) -> list[tuple[str, Image]]:
    """(name, BGR image) of every image file in ``folder``, by name.

    Raises:
        ImageDecodeError: a file with an image suffix is not a readable image.
    """
    return [
        (p.name, read_image(p))
        for p in sorted(folder.iterdir())
        if p.suffix.lower() in defaults.IMAGE_SUFFIXES
    ]


def compare_engines(
    spec: ModelSpec,
    store: ModelStore,
    images: Sequence[tuple[str, Image]],
    tolerance: Tolerance = Tolerance(),
    engines: tuple[str, str] = ("cv2.dnn", "onnxruntime"),
) -> ModelParity:
    """Run ``spec`` on ``images`` under both ``engines`` and compare (see the module doc).

    Never raises for a model that fails: its report carries the reason.
    """
    report = ModelParity(spec.name, engines)
    try:
        a = load_adapter(spec, store, engine=engines[0])
        if engines[1] not in a.engines:
            report.raw_only = True
            _compare_raw_only(spec, store, images, tolerance, engines, report)
            return report
        b = load_adapter(spec, store, engine=engines[1])
    except PipelineError as exc:
        report.problems.append(f"{type(exc).__name__}: {exc}")
        return report
    mismatch = _input_mismatch(spec, b)
    if mismatch:
        report.problems.append(mismatch)
        return report
    for name, image in images:
        report.images.append(_compare_image(name, image, a, b, spec, tolerance))
    return report


def _input_mismatch(spec: ModelSpec, engine_side: Adapter) -> str:
    """Why the registry's input size cannot be what the file declares, or ''."""
    engine = engine_side.engine
    if not isinstance(engine, OrtEngine) or spec.preprocess.resize == "none":
        return ""
    shape = engine.session.get_inputs()[0].shape
    w, h = spec.preprocess.input_wh
    declared = [d if isinstance(d, int) else None for d in shape]
    if len(declared) == 4 and None not in declared[2:] and declared[2:] != [h, w]:
        return (
            f"preprocess.input_wh is {w}x{h} but {spec.files['model'].path} declares input "
            f"{shape} (N, C, H, W); fix the registry entry's input_wh"
        )
    return ""


def _compare_image(
    name: str, image: Image, a: Adapter, b: Adapter, spec: ModelSpec, tol: Tolerance
) -> ImageParity:
    result = ImageParity(name)
    try:
        blob, meta = a.preprocess(image)
        raw_a, raw_b = a.infer(blob), b.infer(blob)
    except Exception as exc:  # either engine refusing the blob is the finding
        result.problems.append(f"{name}: forward failed: {type(exc).__name__}: {exc}")
        return result
    _compare_raw(name, raw_a, raw_b, tol, result, strict=a.ordered_outputs)
    if result.problems:
        return result
    try:
        det_a, det_b = a.postprocess(raw_a, meta), b.postprocess(raw_b, meta)
    except Exception as exc:
        result.problems.append(f"{name}: postprocess failed: {type(exc).__name__}: {exc}")
        return result
    _compare_detections(name, det_a, det_b, spec.postprocess.score_threshold, tol, result)
    return result


def _compare_raw(
    name: str,
    raw_a: RawOutputs,
    raw_b: RawOutputs,
    tol: Tolerance,
    result: ImageParity,
    strict: bool = True,
) -> None:
    if set(raw_a) != set(raw_b):
        result.problems.append(f"{name}: outputs differ: {sorted(raw_a)} vs {sorted(raw_b)}")
        return
    for key in sorted(raw_a):
        out_a, out_b = np.asarray(raw_a[key], np.float64), np.asarray(raw_b[key], np.float64)
        if out_a.shape != out_b.shape:
            result.problems.append(f"{name}: output {key} shapes {out_a.shape} vs {out_b.shape}")
            continue
        if not (np.isfinite(out_a).all() and np.isfinite(out_b).all()):
            result.problems.append(f"{name}: output {key} has NaN or infinite values")
            result.max_abs_diff = result.max_rel_diff = float("inf")
            continue
        diff = float(np.abs(out_a - out_b).max()) if out_a.size else 0.0
        scale = float(np.abs(out_a).max()) if out_a.size else 0.0
        rel = diff / scale if scale else diff
        result.max_abs_diff = max(result.max_abs_diff, diff)
        result.max_rel_diff = max(result.max_rel_diff, rel)
        if rel > tol.raw_rtol and strict:  # rows the graph orders itself may swap places
            result.problems.append(
                f"{name}: output {key} differs by {diff:.3g} ({rel:.2%} of its scale)"
            )


def _compare_detections(
    name: str,
    det_a: Detections,
    det_b: Detections,
    threshold: float,
    tol: Tolerance,
    result: ImageParity,
) -> None:
    pairs, only_a, only_b = match_by_iou(det_a.xyxy, det_b.xyxy, tol.min_iou, det_a, det_b)
    result.matched = len(pairs)
    for i, j, overlap in pairs:
        result.min_iou = min(result.min_iou, overlap)
        score = abs(float(det_a.confidence[i]) - float(det_b.confidence[j]))
        result.max_score_diff = max(result.max_score_diff, score)
        if det_a.class_id[i] != det_b.class_id[j]:
            result.class_diffs += 1
    if result.max_score_diff > tol.score_atol:
        result.problems.append(f"{name}: matched scores differ by {result.max_score_diff:.3g}")
    if result.class_diffs:
        result.problems.append(f"{name}: {result.class_diffs} matched detection(s) change class")
    # One engine's detection just over the threshold, the other's just under, is not a finding.
    lone = [(det_a, i) for i in only_a] + [(det_b, j) for j in only_b]
    real = [(d, k) for d, k in lone if float(d.confidence[k]) - threshold > tol.edge]
    result.only_a, result.only_b = len(only_a), len(only_b)
    if real:
        result.problems.append(
            f"{name}: {len(real)} detection(s) found by one engine only "
            f"(scores {', '.join(f'{float(d.confidence[k]):.2f}' for d, k in real)})"
        )


def match_by_iou(
    a: npt.NDArray[np.float32],
    b: npt.NDArray[np.float32],
    min_iou: float,
    rows_a: Detections | None = None,
    rows_b: Detections | None = None,
) -> tuple[list[tuple[int, int, float]], list[int], list[int]]:
    """Greedy one-to-one matching of boxes ``a`` (N, 4) and ``b`` (M, 4), best IoU first.

    With the rows' classes and scores (``rows_a``, ``rows_b``), pairs whose IoUs are within 0.01
    are taken same class first, then closest score: per-class NMS keeps one box per class where
    several classes fire, and those copies must pair with their own class, not the first found.

    Returns:
        (i, j, iou) pairs at ``min_iou`` or more, then the unmatched indices of a and of b.
    """
    if len(a) == 0 or len(b) == 0:
        return [], list(range(len(a))), list(range(len(b)))
    tl = np.maximum(a[:, None, :2], b[None, :, :2])
    br = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(br - tl, 0, None).prod(axis=2)
    area_a = (a[:, 2:] - a[:, :2]).clip(0).prod(axis=1)
    area_b = (b[:, 2:] - b[:, :2]).clip(0).prod(axis=1)
    ious = inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)
    keys = [-ious.ravel()]  # np.lexsort: the last key is the primary one
    if rows_a is not None and rows_b is not None:
        score_gap = np.abs(rows_a.confidence[:, None] - rows_b.confidence[None, :])
        other_class = rows_a.class_id[:, None] != rows_b.class_id[None, :]
        keys += [score_gap.ravel(), other_class.ravel(), -np.round(ious, 2).ravel()]
    pairs: list[tuple[int, int, float]] = []
    used_a: set[int] = set()
    used_b: set[int] = set()
    for flat in np.lexsort(keys):
        i, j = divmod(int(flat), len(b))
        if ious[i, j] < min_iou:
            continue  # rounded IoUs come first, so a later pair may still pass
        if i not in used_a and j not in used_b:
            pairs.append((i, j, float(ious[i, j])))
            used_a.add(i)
            used_b.add(j)
    return (
        pairs,
        [i for i in range(len(a)) if i not in used_a],
        [j for j in range(len(b)) if j not in used_b],
    )


def _compare_raw_only(
    spec: ModelSpec,
    store: ModelStore,
    images: Sequence[tuple[str, Image]],
    tol: Tolerance,
    engines: tuple[str, str],
    report: ModelParity,
) -> None:
    """The family decodes inside OpenCV (YuNet): compare the bare network's outputs on each
    image stretched to the file's own input size."""
    path = store.files(spec)["model"]
    engine_a = open_engine(engines[0], path)
    engine_b = open_engine(engines[1], path)
    shape = engine_b.session.get_inputs()[0].shape if isinstance(engine_b, OrtEngine) else None
    if not shape or not all(isinstance(d, int) for d in shape[2:]):
        report.problems.append(f"{path} has no fixed input size to compare the network at")
        return
    pre = spec.preprocess
    stretch = type(pre)(input_wh=(shape[3], shape[2]), resize="stretch", scale=pre.scale)
    for name, image in images:
        result = ImageParity(name)
        blob, _ = to_blob(image, stretch)
        try:
            _compare_raw(name, engine_a.forward(blob), engine_b.forward(blob), tol, result)
        except Exception as exc:
            result.problems.append(f"{name}: forward failed: {type(exc).__name__}: {exc}")
        report.images.append(result)
