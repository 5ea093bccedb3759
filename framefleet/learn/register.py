"""Registration: copy an exported model into the model directory and add its registry entry to
the user's registry file, so workers serve it by name with no code change.

    <model dir>/custom/<name>/model.onnx, labels.txt     (FRAMEFLEET_MODEL_DIR)
    [models.<name>] in the registry file                 (FRAMEFLEET_MODELS / --models-file)

Workers read the registry when they start: start (or restart) a worker with ``--models <name>``
after registering.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from framefleet.core.errors import ConfigError
from framefleet.core.modelstore import sha256_file
from framefleet.core.registry import Preprocess, load_registry
from framefleet.core.registryfile import add_entry
from framefleet.core.settings import Settings

CUSTOM_DIR = "custom"
"""Folder under the model directory that holds registered models, one sub-folder each."""

HEADER = (
    "# Model registry written by `framefleet finetune`, `train` and `models add` (comments are "
    "kept\n# unless an entry is replaced). Use it with --models-file FILE or FRAMEFLEET_MODELS.\n"
)


@dataclass(frozen=True)
class Registered:
    """Where a registered model went."""

    name: str
    registry_file: Path
    model_path: Path
    sha256: str


def registry_entry(
    *,
    model_rel: str,
    labels_rel: str,
    model_sha: str,
    labels_sha: str,
    preprocess: Preprocess,
    n_classes: int,
    description: str,
) -> dict[str, Any]:
    """The ``[models.NAME]`` table of a classifier exported by finetune or train."""
    return {
        "task": "classification",
        "family": "classifier",
        "description": description,
        "files": {"model": {"path": model_rel, "sha256": model_sha}},
        "labels": {"path": labels_rel, "sha256": labels_sha},
        "preprocess": {
            "input_wh": list(preprocess.input_wh),
            "resize": preprocess.resize,
            "scale": preprocess.scale,
            "mean": list(preprocess.mean),
            "std": list(preprocess.std),
            "swap_rb": preprocess.swap_rb,
        },
        "postprocess": {"top_k": min(5, n_classes), "score_threshold": 0.0},
    }


def register(
    name: str,
    out_dir: Path,
    model_dir: Path,
    registry_file: Path,
    preprocess: Preprocess,
    classes: list[str],
    description: str,
) -> Registered:
    """Copy ``out_dir``'s model.onnx and labels.txt to the model directory and add ``name`` to
    ``registry_file`` (created if missing; an entry of the same name is replaced).

    Raises:
        ConfigError: ``name`` is a built-in model, or the registry file does not parse.

    Example:
        >>> register("shapes", Path("out"), settings.model_dir, Path("models.toml"), pre,
        ...          ["circle", "square"], "fine-tuned mobilenet-v2")
    """
    if name in load_registry().models:
        raise ConfigError(f"{name!r} is a built-in model name; choose another --name")
    target = model_dir / CUSTOM_DIR / name
    target.mkdir(parents=True, exist_ok=True)
    for file in ("model.onnx", "labels.txt"):
        shutil.copyfile(out_dir / file, target / file)
    model_sha, labels_sha = sha256_file(target / "model.onnx"), sha256_file(target / "labels.txt")
    entry = registry_entry(
        model_rel=f"{CUSTOM_DIR}/{name}/model.onnx",
        labels_rel=f"{CUSTOM_DIR}/{name}/labels.txt",
        model_sha=model_sha,
        labels_sha=labels_sha,
        preprocess=preprocess,
        n_classes=len(classes),
        description=description,
    )
    add_entry(registry_file, name, entry, replace=True, header=HEADER)
    load_registry(registry_file).get(name)  # what workers will read must load
    return Registered(name, registry_file, target / "model.onnx", model_sha)


def readable(settings: Settings) -> Settings:
    """``settings`` for reading the registry: a registry file that does not exist yet (the first
    registration creates it) is left out rather than failing."""
    missing = settings.models_file is not None and not settings.models_file.is_file()
    return replace(settings, models_file=None) if missing else settings
