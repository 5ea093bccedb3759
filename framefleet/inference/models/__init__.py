"""Model adapters, one module per family, and `load_adapter` to build one from the registry.

Example:
    >>> adapter = load_adapter(load_registry().get("yolox-nano"), ModelStore(model_dir))
    >>> detections = adapter(image)
"""

from __future__ import annotations

import logging

from framefleet.core.errors import ConfigError, ModelLoadError
from framefleet.core.modelstore import ModelStore
from framefleet.core.registry import ModelSpec
from framefleet.inference.engines import CV_DNN, choose_engine
from framefleet.inference.models.base import Adapter
from framefleet.inference.models.deeplab import DeeplabAdapter
from framefleet.inference.models.detr import DetrAdapter
from framefleet.inference.models.fastestdet import FastestDetAdapter
from framefleet.inference.models.graph import Graph, Proposal
from framefleet.inference.models.image_classifier import ImageClassifierAdapter
from framefleet.inference.models.mobilenet import (
    ClassifierAdapter,
    EmbeddingAdapter,
    MobilenetAdapter,
)
from framefleet.inference.models.ssd import SsdAdapter
from framefleet.inference.models.ulfd import UlfdAdapter
from framefleet.inference.models.yolo_e2e import YoloE2eAdapter
from framefleet.inference.models.yolov8 import Yolov8Adapter
from framefleet.inference.models.yolov8_pose import Yolov8PoseAdapter
from framefleet.inference.models.yolov8_seg import Yolov8SegAdapter
from framefleet.inference.models.yolox import YoloxAdapter
from framefleet.inference.models.yunet import YunetAdapter

FAMILIES: dict[str, type[Adapter]] = {
    cls.family: cls
    for cls in (
        YoloxAdapter,
        FastestDetAdapter,
        YunetAdapter,
        UlfdAdapter,
        MobilenetAdapter,
        ClassifierAdapter,
        EmbeddingAdapter,
        DeeplabAdapter,
        SsdAdapter,
        DetrAdapter,
        YoloE2eAdapter,
        Yolov8Adapter,
        Yolov8SegAdapter,
        Yolov8PoseAdapter,
        ImageClassifierAdapter,
    )
}
"""Adapter class by registry ``family`` name, in the order `propose` asks them (the most
specific layouts first, the generic classifier last)."""

log = logging.getLogger(__name__)


def propose(graph: Graph, family: str = "") -> Proposal:
    """The registry entry for ``graph``: the first family that recognises it, or ``family``.

    Raises:
        ModelLoadError: no family (or not ``family``) recognises the file; the message lists
            its input and outputs and the flags that settle it.

    Example:
        >>> propose(read_graph(Path("yolo11n.onnx"))).family
        'yolov8'
    """
    if family and family not in FAMILIES:
        raise ConfigError(f"unknown family {family!r}; known families: {', '.join(FAMILIES)}")
    for cls in [FAMILIES[family]] if family else FAMILIES.values():
        found = cls.recognise(graph)
        if found is not None:
            return found
    readable = ", ".join(
        n
        for n, c in FAMILIES.items()
        if any("recognise" in vars(k) for k in c.__mro__[: c.__mro__.index(Adapter)])
    )
    which = f"family {family!r} does not recognise" if family else "no family recognises"
    raise ModelLoadError(
        f"{which} {graph.path}: {graph.describe()}; metadata keys "
        f"{sorted(graph.metadata) or 'none'}. Families that read files: {readable}. If it is "
        "one of those, name it with --family (and --task, --labels); otherwise write its entry "
        "by hand (models.toml's header lists the fields)"
    )


def load_adapter(
    spec: ModelSpec, store: ModelStore, engine: str = "", threads: int = 1, batch: int = 1
) -> Adapter:
    """Build the adapter of ``spec``: verified files and labels from ``store``, then its family.

    Args:
        spec: the registry entry.
        store: where model files live (and are downloaded to, if allowed).
        engine: ``cv2.dnn`` or ``onnxruntime``; empty: the entry's ``engine``, else ``cv2.dnn``.
            A family that runs on one engine only (YuNet, Caffe SSD) keeps its own, with a
            warning; result documents name the engine that ran.
        threads: onnxruntime threads per session (OpenCV's are set per process).
        batch: the most images per forward; probed at load (1 where the file refuses more).

    Returns:
        A ready adapter; call it on a BGR image to get `Detections`.

    Raises:
        ConfigError: ``spec.family`` is not one of `FAMILIES`, or the engine is unknown or not
            installed (the message names the extra to install).
        ModelLoadError: a model or labels file is missing (and cannot be downloaded), or
            OpenCV refused the model.
        ChecksumMismatch: a file's sha256 differs from the registry's.
        ModelError: a download failed.

    Example:
        >>> adapter = load_adapter(registry.get("yunet"), ModelStore(Path("models")))
        >>> adapter(image).landmarks.shape
        (4, 5, 2)
    """
    family = FAMILIES.get(spec.family)
    if family is None:
        raise ConfigError(
            f"model {spec.name!r} has family {spec.family!r}; known families: "
            f"{', '.join(sorted(FAMILIES))}"
        )
    name = choose_engine(engine, spec.engine)
    own_cv2 = name == CV_DNN and family.engines[0].startswith("cv2.")  # OpenCV either way
    if name not in family.engines and not own_cv2:
        log.warning(
            "model %s (family %s) runs on %s only; engine %s not used",
            spec.name,
            family.family,
            family.engines[0],
            name,
        )
    if name not in family.engines:
        name = family.engines[0]
    family.check_supported(spec)  # before any download
    files = store.files(spec)
    labels = store.labels(spec)
    return family.load(spec, files, labels, engine=name, threads=threads, batch=batch)
