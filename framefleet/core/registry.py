"""The model registry: what each model is, where its files are and how to feed and decode it.

Pure data, no OpenCV: the producer validates model names with it, the workers build adapters
from it. The built-in entries live in ``models.toml`` beside this module; a user's own file in
the same format adds entries or replaces built-in ones by name.
"""

from __future__ import annotations

import difflib
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from framefleet.core import defaults
from framefleet.core.errors import ConfigError, UnknownModelError

Task = Literal["detection", "faces", "classification", "segmentation", "pose"]
Resize = Literal["letterbox", "stretch", "crop", "none"]

_TASKS = ("detection", "faces", "classification", "segmentation", "pose")
_RESIZES = ("letterbox", "stretch", "crop", "none")


@dataclass(frozen=True)
class FileSpec:
    """One file of a model: a path under the model directory, its sha256 and where to get it.

    ``sha256`` is None only for files whose publisher gives no checksum; those are accepted as
    found and their digest is logged so the user can pin it.
    """

    path: str
    sha256: str | None = None
    url: str | None = None


@dataclass(frozen=True)
class Preprocess:
    """How an image becomes the network's input blob.

    ``value = (pixel - mean) * scale / std`` per channel, after resizing to ``input_wh``
    (width, height) by ``resize``: ``letterbox`` keeps the aspect ratio and pads with
    ``pad_value`` at the bottom and right (both sides evenly with ``center``, as Ultralytics
    does); ``stretch`` ignores the aspect ratio; ``crop`` scales the shorter side to
    ``input / crop_fraction`` and cuts the centre out, antialiased as torchvision and Ultralytics
    classifiers are fed (torchvision's ImageNet recipe, 256 then 224, is ``crop_fraction =
    0.875``); ``none`` leaves the size to the adapter (YuNet runs at the image's own size).
    """

    input_wh: tuple[int, int]
    resize: Resize = "stretch"
    scale: float = 1.0
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    swap_rb: bool = False
    pad_value: float = 0.0
    center: bool = False
    crop_fraction: float = 1.0
    stride: int = 0
    """Letterbox only: pad to the smallest sides that are multiples of ``stride`` instead of to
    ``input_wh`` (Ultralytics' rectangle for files with a dynamic input size); 0: to input_wh."""


@dataclass(frozen=True)
class Postprocess:
    """Decoding thresholds: scores below ``score_threshold`` are dropped, NMS at ``nms_threshold``
    IoU, at most ``top_k`` rows kept (classification: the k best classes)."""

    score_threshold: float = 0.5
    nms_threshold: float = 0.45
    top_k: int = 100


@dataclass(frozen=True)
class ModelSpec:
    """One registry entry."""

    name: str
    task: Task
    family: str
    files: dict[str, FileSpec]
    preprocess: Preprocess
    postprocess: Postprocess = field(default_factory=Postprocess)
    labels: FileSpec | None = None
    description: str = ""
    engine: str = ""
    """The engine this model runs on unless the worker or the job names one; empty: the
    default (``cv2.dnn``)."""
    layout: dict[str, Any] = field(default_factory=dict)
    """Facts about the file's outputs its family needs and cannot see in them, as ``models add``
    read them from the file (e.g. ``keypoints = [17, 3]`` for a pose model)."""


@dataclass(frozen=True)
class Registry:
    """All known models, by name.

    Example:
        >>> registry = load_registry()
        >>> registry.get("yolox-nano").task
        'detection'
    """

    models: dict[str, ModelSpec]
    default: str

    def get(self, name: str) -> ModelSpec:
        """The entry called ``name``.

        Raises:
            UnknownModelError: no such entry; the message lists the known names.
        """
        try:
            return self.models[name]
        except KeyError:
            known = ", ".join(sorted(self.models))
            close = difflib.get_close_matches(name, self.models, n=3, cutoff=0.6)
            guess = f"did you mean {' or '.join(close)}? " if close else ""
            raise UnknownModelError(
                f"unknown model {name!r}; {guess}known models: {known}. "
                "Add your own with --models-file FILE (FRAMEFLEET_MODELS)."
            ) from None

    def names(self) -> list[str]:
        """Model names, sorted."""
        return sorted(self.models)


def load_registry(extra: Path | None = None) -> Registry:
    """The built-in registry, plus the entries of ``extra`` (which win on equal names).

    Raises:
        ConfigError: ``extra`` is missing, not TOML, or has an invalid entry.
    """
    builtin = resources.files("framefleet.core").joinpath("models.toml").read_text(encoding="utf-8")
    doc = _parse(builtin, "built-in models.toml")
    models = _entries(doc, "built-in models.toml")
    default = str(doc.get("default", next(iter(models))))
    if extra is not None:
        try:
            text = Path(extra).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(
                f"cannot read model registry file {extra}: {exc.strerror}; "
                "check the path given to --models-file / FRAMEFLEET_MODELS"
            ) from exc
        user = _parse(text, str(extra))
        models.update(_entries(user, str(extra)))
        default = str(user.get("default", default))
    if default not in models:
        raise ConfigError(f"default model {default!r} is not an entry of the registry")
    return Registry(models=models, default=default)


def _parse(text: str, where: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"model registry {where} is not valid TOML: {exc}") from exc


def _entries(doc: dict[str, Any], where: str) -> dict[str, ModelSpec]:
    raw = doc.get("models")
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"model registry {where} has no [models.NAME] tables")
    return {name: _spec(name, entry, where) for name, entry in raw.items()}


def _spec(name: str, entry: dict[str, Any], where: str) -> ModelSpec:
    ctx = f"model {name!r} in {where}"
    try:
        task = entry["task"]
        family = str(entry["family"])
        files = {role: _file(f, f"{ctx}, files.{role}") for role, f in entry["files"].items()}
        pre = dict(entry["preprocess"])
    except KeyError as exc:
        raise ConfigError(f"{ctx} lacks the required key {exc.args[0]!r}") from None
    if task not in _TASKS:
        raise ConfigError(f"{ctx}: task must be one of {', '.join(_TASKS)}, got {task!r}")
    if "model" not in files:
        raise ConfigError(f"{ctx}: files must include a 'model' role")
    if pre.get("resize", "stretch") not in _RESIZES:
        raise ConfigError(
            f"{ctx}: preprocess.resize must be one of {_RESIZES}, got {pre['resize']!r}"
        )
    try:
        preprocess = Preprocess(
            input_wh=_pair(pre.pop("input_wh")),
            mean=_triple(pre.pop("mean", (0, 0, 0))),
            std=_triple(pre.pop("std", (1, 1, 1))),
            **pre,
        )
        postprocess = Postprocess(**entry.get("postprocess", {}))
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{ctx}: invalid preprocess/postprocess: {exc}") from exc
    layout = entry.get("layout", {})
    if not isinstance(layout, dict):
        raise ConfigError(f"{ctx}: layout must be a table, got {layout!r}")
    engine = str(entry.get("engine", ""))
    if engine and engine not in defaults.ENGINES:
        raise ConfigError(f"{ctx}: engine must be one of {defaults.ENGINES}, got {engine!r}")
    labels = entry.get("labels")
    return ModelSpec(
        name=name,
        task=task,
        family=family,
        files=files,
        preprocess=preprocess,
        postprocess=postprocess,
        labels=None if labels is None else _file(labels, f"{ctx}, labels"),
        description=str(entry.get("description", "")),
        engine=engine,
        layout=dict(layout),
    )


def _file(raw: Any, ctx: str) -> FileSpec:
    if isinstance(raw, str):
        return FileSpec(path=raw)
    if not isinstance(raw, dict) or "path" not in raw:
        raise ConfigError(f"{ctx} must be a path or a table with 'path' (and 'sha256', 'url')")
    sha = raw.get("sha256")
    if sha is not None and (
        len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha.lower())
    ):
        raise ConfigError(f"{ctx}: sha256 must be 64 hex digits, got {sha!r}")
    return FileSpec(path=str(raw["path"]), sha256=sha and sha.lower(), url=raw.get("url"))


def _pair(value: Any) -> tuple[int, int]:
    w, h = (int(v) for v in value)
    if w <= 0 or h <= 0:
        raise ValueError(f"input_wh must be two positive integers, got {value!r}")
    return w, h


def _triple(value: Any) -> tuple[float, float, float]:
    a, b, c = (float(v) for v in value)
    return a, b, c
