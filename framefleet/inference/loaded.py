"""Loaded models: an adapter ready to run plus what result documents say about it, the way to
load one by registry name (`load_model`), and the per-process cache that loads each (registry
model, engine) at most once.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from framefleet.core import defaults
from framefleet.core.documents import ModelInfo
from framefleet.core.modelstore import ModelStore
from framefleet.core.registry import ModelSpec, Registry, load_registry
from framefleet.core.results import Detections
from framefleet.inference.annotate import annotate
from framefleet.inference.imageio import read_image
from framefleet.inference.models import load_adapter
from framefleet.inference.models.base import Adapter, Image

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    """A registry model ready to run: call it on an image (or a path) to get `Detections`.

    Attributes:
        spec: the registry entry. adapter: its three stages around the engine.
        sha256: digest of the model file, as result documents record it.

    Example:
        >>> model = load_model("yolox-nano")
        >>> detections = model("dog.jpg")
        >>> cv2.imwrite("dog-annotated.jpg", model.annotate(read_image("dog.jpg"), detections))
    """

    spec: ModelSpec
    adapter: Adapter
    sha256: str

    @property
    def info(self) -> ModelInfo:
        """What a result document says about this model."""
        return ModelInfo(
            name=self.spec.name,
            task=self.spec.task,
            sha256=self.sha256,
            engine=self.engine,
            engine_version=self.engine_version,
        )

    @property
    def engine(self) -> str:
        """The engine that runs it, e.g. ``onnxruntime``."""
        return self.adapter.engine.name

    @property
    def engine_version(self) -> str:
        """The version of the library behind `engine`."""
        return self.adapter.engine.version

    def __call__(self, image: Image | str | Path) -> Detections:
        """Run preprocess, forward and postprocess on ``image``.

        Args:
            image: an H×W×3 uint8 BGR array (OpenCV's layout), or the path of an image file.

        Returns:
            Detections in the image's pixels.

        Raises:
            ImageDecodeError: the path is not a readable image.
        """
        if not isinstance(image, np.ndarray):
            image = read_image(image)
        return self.adapter(image)

    def label(self, class_id: int) -> str:
        """The class name of ``class_id``."""
        return self.adapter.label(class_id)

    def annotate(self, image: Image, detections: Detections) -> Image:
        """A copy of ``image`` with ``detections`` drawn on it (boxes, labels, landmarks, masks)."""
        return annotate(image, detections, self.adapter.labels, task=self.spec.task)


def load_model(
    name: str | None = None,
    *,
    model_dir: str | Path = defaults.MODEL_DIR,
    models_file: str | Path | None = None,
    download: bool = True,
    engine: str = "",
    threads: int = 1,
) -> LoadedModel:
    """Load a registry model: its files verified by sha256 (downloaded when missing and allowed).

    Args:
        name: registry name (``framefleet models`` lists them); None for the registry's default.
        model_dir: where model files are found, or downloaded to.
        models_file: your own registry (TOML), merged over the built-in one.
        download: fetch missing files from their URL; False to use only files on disk.
        engine: ``cv2.dnn`` or ``onnxruntime`` (``pip install 'framefleet[onnxruntime]'``);
            empty: the registry entry's, else ``cv2.dnn``.
        threads: onnxruntime threads for this model (OpenCV's are ``cv2.setNumThreads``).

    Returns:
        The model, ready to call on images.

    Raises:
        UnknownModelError: no such model. ModelError: its files are missing, wrong or unloadable.

    Example:
        >>> model = load_model("yunet", model_dir="../shared/models")
        >>> len(model("faces.jpg"))
        4
    """
    registry = load_registry(None if models_file is None else Path(models_file))
    store = ModelStore(Path(model_dir).expanduser(), download=download)
    return ModelCache(registry, store, engine=engine, threads=threads).get(name or registry.default)


@dataclass
class ModelCache:
    """Networks loaded in this process, by registry name and engine; each pair loads once.

    Args:
        registry, store: where entries and files come from.
        engine: this process's engine (the worker's ``--engine``); empty: each entry's own.
        threads: onnxruntime threads per session (OpenCV's are set per process).
        batch: most images per forward, probed per model at load.

    Example:
        >>> cache = ModelCache(registry, store, engine="onnxruntime", threads=1)
        >>> cache.get("yolox-nano").engine
        'onnxruntime'
    """

    registry: Registry
    store: ModelStore
    engine: str = ""
    threads: int = 1
    batch: int = 1
    _loaded: dict[tuple[str, str], LoadedModel] = field(default_factory=dict)

    def get(self, name: str, engine: str = "") -> LoadedModel:
        """The loaded model ``name`` on ``engine`` (a job's own choice; empty: the cache's, then
        the entry's), loading it on first use.

        Raises:
            UnknownModelError, ModelError: the name is unknown or its files cannot be loaded.
            ConfigError: the engine is unknown or not installed.
        """
        key = (name, engine or self.engine)
        model = self._loaded.get(key)
        if model is None:
            spec = self.registry.get(name)
            adapter = load_adapter(
                spec, self.store, engine=key[1], threads=self.threads, batch=self.batch
            )
            digest = self.store.digest(spec.files["model"])  # cached by load_adapter's check
            model = LoadedModel(spec=spec, adapter=adapter, sha256=digest)
            self._loaded[key] = model
            log.info(
                "pid %d loaded model %s on %s %s, batch %d (%s)",
                os.getpid(),
                name,
                model.engine,
                model.engine_version,
                adapter.engine.max_batch,
                spec.description,
            )
        return model

    def names(self) -> list[str]:
        """Names of the models loaded so far."""
        return sorted({name for name, _ in self._loaded})
