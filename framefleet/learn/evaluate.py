"""`framefleet evaluate`: run a model over labelled data (in-process, or on the fleet as a job) or
read a finished job's result documents, then score them (`framefleet.learn.metrics`).

    classification   --data ImageFolder (truth = the folder names)
    detection        --data folder of images + --truth COCO JSON (images[].file_name = keys)

Written to ``--out``: metrics.json, confusion_matrix.png (classification), pr_curves.png.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from framefleet.core.documents import ImageDocument, read_document
from framefleet.core.errors import (
    ConfigError,
    DatasetError,
    InputError,
    ObjectNotFound,
    StorageError,
)
from framefleet.core.modelstore import ModelStore
from framefleet.core.outputs import result_key
from framefleet.core.results import Detections
from framefleet.core.settings import Settings
from framefleet.core.storage import Storage, open_storage
from framefleet.inference.imageio import decode_image
from framefleet.inference.loaded import ModelCache
from framefleet.learn import metrics as score
from framefleet.learn.datasets import image_folder

Echo = Callable[[str], None]


@dataclass(frozen=True)
class Source:
    """Where predictions come from: a model to run, or a finished job's results.

    Attributes:
        model: registry name to run (in-process or on the fleet); None when reading results.
        results_uri: output root of a finished job whose documents are scored as they are.
        fleet: run on the fleet (True), in-process (False), or by size (None).
        job_id: the job the predictions came from, when known.
    """

    model: str | None = None
    results_uri: str | None = None
    fleet: bool | None = None
    job_id: str | None = None


def from_job(settings: Settings, job_id: str) -> tuple[Source, str]:
    """The source and input URI of finished job ``job_id`` (its outputs are scored, not rerun).

    Raises:
        JobNotFound: no such job. ConfigError: the job has not finished.
    """
    from framefleet.state.jobs import JobStore

    record = JobStore.from_url(settings.redis_url).get(job_id)
    if not record.finished:
        raise ConfigError(
            f"job {job_id} is {record.status.value} ({record.processed}/{record.total} items); "
            f"score it once it finishes: framefleet status {job_id} --watch"
        )
    return Source(results_uri=record.output_uri, job_id=job_id), record.input_uri


def read_results(results: Storage, keys: Iterable[str]) -> tuple[dict[str, Detections], list[str]]:
    """Detections of each key from its result document; keys without one are returned apart."""
    found: dict[str, Detections] = {}
    missing: list[str] = []
    for key in keys:
        try:
            document = read_document(results.read_bytes(result_key(key)))
        except ObjectNotFound:
            missing.append(key)
            continue
        if isinstance(document, ImageDocument):
            found[key] = document.results
        else:
            missing.append(key)
    return found, missing


def run_in_process(
    settings: Settings, model: str, data: Storage, keys: list[str], echo: Echo
) -> tuple[dict[str, Detections], list[str]]:
    """Run registry model ``model`` on each key of ``data`` in this process."""
    loaded = ModelCache(settings.registry(), ModelStore(settings.model_dir)).get(model)
    found: dict[str, Detections] = {}
    failed: list[str] = []
    step = max(1, len(keys) // 10)
    for i, key in enumerate(keys):
        try:
            found[key] = loaded(decode_image(data.read_bytes(key), data.uri_for(key)))
        except (InputError, StorageError) as exc:
            echo(f"failed {key}: {exc}")
            failed.append(key)
        if (i + 1) % step == 0 or i + 1 == len(keys):
            echo(f"{model}: {i + 1}/{len(keys)} images in-process")
    return found, failed


def run_on_fleet(
    settings: Settings, model: str, data_uri: str, out_uri: str, echo: Echo
) -> tuple[str, str]:
    """Submit ``data_uri`` as a job of ``model`` writing to ``out_uri``; wait with progress.
    Returns the job id and the results URI."""
    from framefleet.queue import create_app
    from framefleet.state.jobs import JobStore
    from producer.progress import watch
    from producer.submit import submit

    submission = submit(settings, create_app(settings), data_uri, out_uri, model)
    job_id = submission.job_id or ""
    echo(f"evaluation job {job_id}: {submission.items} images on the fleet ({model})")
    watch(JobStore.from_url(settings.redis_url), job_id)
    return job_id, out_uri


def predictions(
    settings: Settings, source: Source, data_uri: str, keys: list[str], out_dir: Path, echo: Echo
) -> tuple[dict[str, Detections], list[str], Source]:
    """Predictions for ``keys``: read from results, or by running the model where asked."""
    if source.results_uri is None:
        if source.model is None:
            raise ConfigError("give --model to run, or --job / --results to score finished outputs")
        use_fleet = (
            source.fleet if source.fleet is not None else len(keys) > settings.local_max_items
        )
        if not use_fleet:
            found, failed = run_in_process(
                settings, source.model, open_storage(data_uri), keys, echo
            )
            return found, failed, source
        job_id, results_uri = run_on_fleet(
            settings, source.model, data_uri, str(out_dir / "results"), echo
        )
        source = replace(source, results_uri=results_uri, job_id=job_id)
    else:
        results_uri = source.results_uri
    found, missing = read_results(open_storage(results_uri), keys)
    return found, missing, source


def evaluate(
    settings: Settings,
    source: Source,
    data_uri: str,
    out_dir: Path,
    truth: Path | None = None,
    echo: Echo = print,
) -> dict[str, Any]:
    """Score ``source``'s predictions on ``data_uri`` (with COCO ``truth`` for detection).

    Returns:
        The metrics, also written to ``out_dir/metrics.json`` beside the plots.

    Raises:
        DatasetError: the data or truth is unusable. ConfigError: nothing to score.

    Example:
        >>> evaluate(settings, Source(model="shapes"), "labelled/", Path("eval"))["accuracy"]
        0.95
        >>> evaluate(settings, Source(results_uri="s3://out/run1/"), "s3://in/", Path("eval"),
        ...          truth=Path("instances.json"))["mAP_50"]
        0.61
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    if truth is not None:
        gt = score.load_coco(truth)
        keys = [str(img["file_name"]) for img in gt.dataset["images"]]
        found, missing, source = predictions(settings, source, data_uri, keys, out_dir, echo)
        metrics = score.detection(gt, found, out_dir)
    else:
        data = image_folder(data_uri, min_per_class=1)
        found, missing, source = predictions(
            settings, source, data_uri, list(data.keys), out_dir, echo
        )
        ordered = [found.get(key, Detections.empty()) for key in data.keys]
        metrics = score.classification(data.classes, data.labels, ordered, out_dir)
    if len(missing) == len(found) + len(missing) and missing:
        raise DatasetError(
            f"no predictions for any of the {len(missing)} images of {data_uri} (first: "
            f"{missing[0]}); is the results folder the one the job wrote?"
        )
    full = {
        **metrics,
        "data": data_uri,
        "truth": None if truth is None else str(truth),
        "model": source.model,
        "results": source.results_uri,
        "job_id": source.job_id,
        "missing_predictions": missing,
    }
    (out_dir / "metrics.json").write_text(json.dumps(full, indent=2))
    return full
