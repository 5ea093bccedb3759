"""Registration: copy an exported model into the model directory and add its registry entry to
the user's registry file, so workers serve it by name with no code change.

    <model dir>/custom/<name>/model.onnx, labels.txt     (FRAMEFLEET_MODEL_DIR)
    [models.<name>] in the registry file                 (FRAMEFLEET_MODELS / --models-file)

Workers read the registry when they start: start (or restart) a worker with ``--models <name>``
after registering.
"""

from __future__ import annotations

import json
import shutil
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from framefleet.core.errors import ConfigError
from framefleet.core.modelstore import sha256_file
from framefleet.core.registry import Preprocess, load_registry
from framefleet.core.settings import Settings

CUSTOM_DIR = "custom"
"""Folder under the model directory that holds registered models, one sub-folder each."""

HEADER = (
    "# Model registry written by `framefleet finetune` / `framefleet train` (comments are not "
    "kept).\n# Use it with --models-file FILE or FRAMEFLEET_MODELS=FILE.\n"
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
    doc: dict[str, Any] = {}
    if registry_file.is_file():
        try:
            doc = tomllib.loads(registry_file.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"registry file {registry_file} is not valid TOML: {exc}") from exc
    doc.setdefault("models", {})[name] = entry
    registry_file.parent.mkdir(parents=True, exist_ok=True)
    registry_file.write_text(HEADER + to_toml(doc), encoding="utf-8")
    load_registry(registry_file).get(name)  # what workers will read must load
    return Registered(name, registry_file, target / "model.onnx", model_sha)


def to_toml(doc: dict[str, Any]) -> str:
    """TOML for a registry document: top-level keys, then one ``[models.NAME]`` table each.

    Written by hand because the standard library reads TOML but does not write it, and the
    registry's shapes are few (strings, numbers, booleans, lists, one level of tables).
    """
    lines = [f"{key} = {_value(v)}" for key, v in doc.items() if key != "models"]
    for name, entry in doc.get("models", {}).items():
        lines += ["", f"[models.{_key(name)}]"]
        for key, value in entry.items():
            if key == "files":
                lines += [f"files.{_key(r)} = {_value(f)}" for r, f in value.items()]
            else:
                lines.append(f"{_key(key)} = {_value(value)}")
    return "\n".join(lines) + "\n"


def _key(key: str) -> str:
    bare = key.replace("-", "").replace("_", "").isalnum()
    return key if bare else json.dumps(key)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + " }"
    raise ConfigError(f"cannot write {value!r} ({type(value).__name__}) to a registry file")


def readable(settings: Settings) -> Settings:
    """``settings`` for reading the registry: a registry file that does not exist yet (the first
    registration creates it) is left out rather than failing."""
    missing = settings.models_file is not None and not settings.models_file.is_file()
    return replace(settings, models_file=None) if missing else settings
