"""A base network's embeddings of a labelled set: in-process, or on the fleet as a job.

On the fleet, the set is submitted like any other input with the base's ``embedding`` twin in
the registry (family ``embedding``: same file, result rows carry the 1280-d vector), so feature
extraction gets the job's progress, retries, failure records and report for free, and the
workers need no new code. The vectors come back in the result documents.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from framefleet.core.documents import ImageDocument, read_document
from framefleet.core.errors import ConfigError, InputError, StorageError
from framefleet.core.modelstore import ModelStore
from framefleet.core.outputs import result_key
from framefleet.core.registry import Registry
from framefleet.core.settings import Settings
from framefleet.core.storage import open_storage
from framefleet.inference.loaded import ModelCache
from framefleet.inference.models.mobilenet import MobilenetAdapter
from framefleet.learn.datasets import LabelledSet

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
"""Called with (items done, total) as work advances."""


@dataclass
class Embeddings:
    """Feature vectors of the items of a `LabelledSet` that could be read.

    Attributes:
        vectors: (N, D) float32, one row per item of ``index``.
        index: positions in the labelled set of the rows of ``vectors``.
        failed: key -> reason, for items that could not be embedded (left out).
        job_id: the fleet job that computed them (None in-process).
    """

    vectors: npt.NDArray[np.float32]
    index: npt.NDArray[np.int64]
    failed: dict[str, str] = field(default_factory=dict)
    job_id: str | None = None

    def rows(self, positions: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        """Vectors of the items at ``positions`` of the labelled set (all must be present)."""
        where = {int(p): r for r, p in enumerate(self.index)}
        return self.vectors[[where[int(p)] for p in positions]]

    def has(self, positions: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """The ``positions`` that have a vector."""
        return positions[np.isin(positions, self.index)]


def embedding_model(registry: Registry, base: str) -> str:
    """The registry entry of family ``embedding`` that runs ``base``'s model file.

    Raises:
        ConfigError: none does; the message says how to add one.
    """
    path = registry.get(base).files["model"].path
    for name in registry.names():
        spec = registry.get(name)
        if spec.family == "embedding" and spec.files["model"].path == path:
            return name
    raise ConfigError(
        f"no registry entry of family 'embedding' runs {path} (the file of {base!r}), so the "
        "fleet cannot extract its features; add one (see mobilenet-v2-embed in models.toml) "
        "or use --local"
    )


def embed_locally(
    data: LabelledSet, settings: Settings, base: str, progress: Progress = lambda d, t: None
) -> Embeddings:
    """Embed every item of ``data`` with ``base`` in this process (cv2.dnn).

    Raises:
        ConfigError: ``base`` is not a network with an ``embedding`` output.
        ModelError: its files cannot be loaded.
    """
    adapter = ModelCache(settings.registry(), ModelStore(settings.model_dir)).get(base).adapter
    if not isinstance(adapter, MobilenetAdapter):
        raise ConfigError(
            f"base model {base!r} (family {adapter.family!r}) has no embedding output; use a "
            "classification model of family mobilenet, e.g. mobilenet-v2"
        )
    vectors: list[npt.NDArray[np.float32]] = []
    index: list[int] = []
    failed: dict[str, str] = {}
    for i in range(len(data)):
        try:
            vectors.append(adapter.embed(data.image(i)))
            index.append(i)
        except (InputError, StorageError) as exc:
            failed[data.keys[i]] = f"{type(exc).__name__}: {exc}"
        progress(i + 1, len(data))
    return Embeddings(_stack(vectors), np.array(index, np.int64), failed)


def embed_on_fleet(
    data: LabelledSet, settings: Settings, base: str, work_uri: str, echo: Callable[[str], None]
) -> Embeddings:
    """Submit ``data`` as a job of ``base``'s embedding twin, show its progress, read the vectors.

    Args:
        work_uri: the job's output folder or prefix (result documents and report go there).
        echo: prints a line for the user.

    Raises:
        ConfigError: no embedding twin of ``base`` in the registry.
        StorageError, BrokerError: as `framefleet submit`.
    """
    from framefleet.queue import create_app
    from framefleet.state.jobs import JobStore
    from producer.submit import submit
    from producer.waiting import watch_with_worker_check

    model = embedding_model(settings.registry(), base)
    submission = submit(settings, create_app(settings), data.storage.uri, work_uri, model)
    job_id = submission.job_id or ""
    echo(f"feature job {job_id}: {submission.items} images on the fleet ({model})")
    jobs = JobStore.from_url(settings.redis_url)
    # the job's progress on stderr as `submit --wait` shows it, warning while no worker takes it
    watch_with_worker_check(jobs, job_id, settings.redis_url)
    failed = {item: f"{r.get('error')}: {r.get('message')}" for item, r in jobs.failures(job_id)}
    results = open_storage(work_uri)
    vectors: list[npt.NDArray[np.float32]] = []
    index: list[int] = []
    for i, key in enumerate(data.keys):
        if key in failed:
            continue
        document = read_document(results.read_bytes(result_key(key)))
        if not isinstance(document, ImageDocument) or "embedding" not in document.results.data:
            failed[key] = f"{results.uri_for(result_key(key))} carries no embedding"
            continue
        vectors.append(np.asarray(document.results.data["embedding"][0], np.float32))
        index.append(i)
    return Embeddings(_stack(vectors), np.array(index, np.int64), failed, job_id)


def _stack(vectors: list[npt.NDArray[np.float32]]) -> npt.NDArray[np.float32]:
    return np.stack(vectors).astype(np.float32) if vectors else np.empty((0, 0), np.float32)
