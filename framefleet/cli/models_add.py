"""`framefleet models add`: an ONNX file as people export it (Ultralytics, torchvision) becomes a
model."""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import click

from framefleet.cli.base import HELP_EPILOG, _exits, require_extra
from framefleet.cli.models import models_group
from framefleet.cli.verify import verify
from framefleet.core import registry as registry_module
from framefleet.core.settings import Settings

ADDED_DIR = "added"
"""Folder of the model directory that added files are copied into."""

ADD_EPILOG = """\b
Examples:
  framefleet models add yolo11n.onnx                  # Ultralytics: all read from the file
  framefleet models add resnet50.onnx --labels imagenet.txt --name resnet50
  framefleet models add s3://models/custom/best.onnx --name parts-detector
  framefleet worker --models yolo11n                  # then serve it, submit --model yolo11n
""" + HELP_EPILOG.split("\b", 2)[2]


@models_group.command(name="add", epilog=ADD_EPILOG)
@click.argument("source", metavar="FILE.onnx|s3://BUCKET/KEY")
@click.option("--name", help="Registry name (default: the file's name without .onnx).")
@click.option(
    "--labels",
    "labels_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Class names, one per line (default: the names the file carries, if any).",
)
@click.option("--task", type=click.Choice(registry_module._TASKS), help="Override the task.")
@click.option("--family", default="", help="The layout of its outputs, if the file does not say.")
@click.option(
    "--images",
    "images_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Sample images for the check after adding (default: the shared sample images).",
)
@click.option("--replace", is_flag=True, help="Overwrite an entry of the same name.")
@click.pass_context
@_exits
def add(
    ctx: click.Context,
    source: str,
    name: str | None,
    labels_file: Path | None,
    task: str | None,
    family: str,
    images_dir: Path | None,
    replace: bool,
) -> None:
    """Add an ONNX model to the registry: read its inputs, outputs and metadata, pick the family
    that decodes it, copy it (and its labels) into the model directory with their sha256, write
    its entry into the models file (--models-file, FRAMEFLEET_MODELS, else models.toml in the
    model directory, which every command reads), then check it with `models verify`.

    Workers serve it by name (`worker --models NAME`) when they read the same models file and
    model directory."""
    require_extra("models add", "worker", {"onnx": "onnx", "cv2": "opencv-python-headless"})
    from framefleet.core.errors import ConfigError
    from framefleet.core.modelstore import read_labels, sha256_file
    from framefleet.core.registryfile import add_entry
    from framefleet.inference.models import propose
    from framefleet.inference.models.graph import read_graph
    from framefleet.samples import shared_dir

    settings: Settings = ctx.obj
    with tempfile.TemporaryDirectory(prefix="framefleet-add-") as tmp:
        local = _fetch(source, Path(tmp))
        graph = read_graph(local)
        proposal = propose(graph, family)
        name = name or _slug(local.stem)
        builtin = registry_module.load_registry().models
        if name in builtin and not replace:
            raise ConfigError(
                f"{name!r} is a built-in model; pass --name to add this file under another name"
            )
        labels = read_labels(labels_file) if labels_file else proposal.labels
        folder = settings.model_dir / ADDED_DIR
        folder.mkdir(parents=True, exist_ok=True)
        model_path = folder / f"{name}.onnx"
        shutil.copyfile(local, model_path)
    entry: dict[str, Any] = {
        "task": task or proposal.task,
        "family": proposal.family,
        "description": f"added from {source}",
        "files": {"model": _file(model_path, settings.model_dir, sha256_file(model_path))},
        "preprocess": proposal.preprocess,
        "postprocess": proposal.postprocess,
    }
    if labels:
        labels_path = folder / f"{name}.names"
        labels_path.write_text("\n".join(labels) + "\n", encoding="utf-8")
        entry["labels"] = _file(labels_path, settings.model_dir, sha256_file(labels_path))
    if proposal.layout:
        entry["layout"] = proposal.layout
    models_file = settings.added_models_file()
    add_entry(models_file, name, entry, replace=replace)
    click.echo(f"family {proposal.family}: {proposal.reason}")
    click.echo(
        f"added {name} ({entry['task']}, {len(labels or [])} classes) to {models_file}; "
        f"file {model_path}"
    )
    if settings.models_file is None and models_file.parent != settings.model_dir:
        click.echo(f"every command reads it with --models-file {models_file}")
    click.echo(f"serve it: framefleet worker --models {name}; run: framefleet run --model {name}")
    if images_dir is None and shared_dir() is None:
        click.echo("no sample images to check it on: run framefleet models verify --images DIR")
        return
    ctx.invoke(verify, names=(name,), images_dir=images_dir)


def _fetch(source: str, tmp: Path) -> Path:
    """``source`` as a local file: a path as it is, an object storage URL downloaded."""
    from framefleet.core.errors import ConfigError
    from framefleet.core.storage import open_storage
    from framefleet.core.storage.base import uri_scheme

    if uri_scheme(source) in ("", "file"):
        path = Path(source.removeprefix("file://"))
        if not path.is_file():
            raise ConfigError(f"model file {path} does not exist")
        return path
    root, _, key = source.rstrip("/").rpartition("/")
    local = tmp / key
    open_storage(root).download(key, local)
    return local


def _slug(stem: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", stem).strip("-") or "model"


def _file(path: Path, model_dir: Path, sha256: str) -> dict[str, str]:
    return {"path": path.relative_to(model_dir).as_posix(), "sha256": sha256}
