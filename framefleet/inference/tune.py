"""Calibration: which engine, forward batch, items per message and processes × threads run a
model fastest on this machine, measured on a sample of the user's own input.

Each layout (engine, P processes × T threads) gets a pool of P processes that load the model once
and warm up; every (forward batch, items per message) pair is then one timed trial: the sample
split over the P processes, each running the fleet's own per-message pipeline (`run_images`,
with its reader and writer threads) over messages of that many items, outputs written to a
scratch folder. The table is images/s per trial; the recommendation is the fastest row.

Example:
    >>> result = tune("yolox-nano", "s3://photos/2026/", settings, budget_s=60)
    >>> result.best.engine, round(result.best.rate)
    ('onnxruntime', 104)
"""

from __future__ import annotations

import itertools
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import cv2

from framefleet.core.errors import ConfigError, ObjectNotFound
from framefleet.core.inputs import classify
from framefleet.core.modelstore import ModelStore
from framefleet.core.outputs import is_report_key
from framefleet.core.registry import load_registry
from framefleet.core.storage import Storage, open_storage
from framefleet.inference.engines import ort_version
from framefleet.inference.loaded import LoadedModel, ModelCache
from framefleet.inference.pipeline import run_images


@dataclass(frozen=True)
class Trial:
    """One measured configuration and its figure."""

    engine: str
    processes: int
    threads: int
    forward_batch: int
    items_per_message: int
    rate: float  # images/s over the whole sample

    def env(self) -> dict[str, str]:
        """The settings that reproduce it, as environment variables."""
        return {
            "FRAMEFLEET_ENGINE": self.engine,
            "FRAMEFLEET_CONCURRENCY": str(self.processes),
            "FRAMEFLEET_CV_THREADS": str(self.threads),
            "FRAMEFLEET_FORWARD_BATCH": str(self.forward_batch),
            "FRAMEFLEET_BATCH_SIZE": str(self.items_per_message),
        }


@dataclass
class TuneResult:
    """Every trial measured, fastest first once sorted, and what was left out for time."""

    model: str
    sample: int
    trials: list[Trial] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def best(self) -> Trial:
        return max(self.trials, key=lambda t: t.rate)


@dataclass(frozen=True)
class Grid:
    """What to try. Engines missing from this install are dropped (and said so)."""

    engines: Sequence[str] = ("cv2.dnn", "onnxruntime")
    forward_batches: Sequence[int] = (1, 4)
    items_per_message: Sequence[int] = (4, 16)


def layouts(cores: int) -> list[tuple[int, int]]:
    """(processes, threads per process) using every core: one process per core, and one
    process with every core (and halves between on bigger machines)."""
    out = {(cores, 1), (1, cores)}
    if cores >= 4:
        out.add((cores // 2, 2))
    return sorted(out, reverse=True)


def tune(
    model: str,
    input_uri: str,
    *,
    model_dir: Path,
    models_file: Path | None = None,
    sample: int = 24,
    budget_s: float = 60.0,
    grid: Grid = Grid(),
    on_trial: Callable[[Trial], None] = lambda trial: None,
) -> TuneResult:
    """Measure ``grid`` for ``model`` on up to ``sample`` images of ``input_uri``.

    Stops starting new layouts once ``budget_s`` is spent (what was left is in ``skipped``).

    Raises:
        ObjectNotFound: no image under ``input_uri``.
        UnknownModelError, ModelError, ConfigError: the model cannot be loaded.
    """
    deadline = time.monotonic() + budget_s
    src = open_storage(input_uri)
    keys = list(itertools.islice(_image_keys(src), sample))
    if not keys:
        raise ObjectNotFound(f"no images under {src.uri} to tune on; pass a folder or prefix")
    keys = list(itertools.islice(itertools.cycle(keys), sample))  # a small folder, cycled
    result = TuneResult(model, len(keys))
    engines = [e for e in grid.engines if e != "onnxruntime" or ort_version()]
    result.skipped += [f"engine {e} (not installed)" for e in grid.engines if e not in engines]
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="framefleet-tune-") as scratch:
        # Layout-major: every engine is measured on the first layout before any second one.
        plan = [(e, layout) for layout in layouts(cores) for e in engines]
        for engine, (procs, threads) in plan:
            if time.monotonic() > deadline:
                result.skipped.append(f"{engine} {procs}x{threads} (out of time)")
                continue
            setup = _Setup(
                model, str(model_dir), models_file, engine, threads, max(grid.forward_batches)
            )
            ctx = get_context("spawn")  # a fresh OpenCV thread pool per layout
            with ProcessPoolExecutor(procs, ctx, initializer=_load, initargs=(setup,)) as pool:
                probed = max(pool.map(_warm, [(src.uri, scratch, keys[:1])] * procs))
                for batch, per_message in itertools.product(
                    sorted({min(b, probed) for b in grid.forward_batches}), grid.items_per_message
                ):
                    if time.monotonic() > deadline:
                        result.skipped.append(
                            f"{engine} {procs}x{threads} batch {batch}, {per_message}/message "
                            "(out of time)"
                        )
                        continue
                    shares = [
                        (src.uri, scratch, keys[i::procs], batch, per_message) for i in range(procs)
                    ]
                    start = time.perf_counter()
                    done = sum(pool.map(_run_share, shares))
                    rate = done / (time.perf_counter() - start)
                    trial = Trial(engine, procs, threads, batch, per_message, rate)
                    result.trials.append(trial)
                    on_trial(trial)
    if not result.trials:
        raise ConfigError(f"tune measured nothing for {model}: {'; '.join(result.skipped)}")
    return result


def _image_keys(src: Storage) -> Iterator[str]:
    """Image keys under ``src``, lazily (framefleet's own report files left out)."""
    for obj in src.list():
        if classify(obj.key) == "image" and not is_report_key(obj.key):
            yield obj.key


@dataclass(frozen=True)
class _Setup:
    model: str
    model_dir: str
    models_file: Path | None
    engine: str
    threads: int
    batch: int


_loaded: list[LoadedModel] = []  # the one model of a tuning process, set by `_load`


def _load(setup: _Setup) -> None:
    cv2.setNumThreads(setup.threads)
    cache = ModelCache(
        load_registry(setup.models_file),
        ModelStore(Path(setup.model_dir), download=False),
        engine=setup.engine,
        threads=setup.threads,
        batch=setup.batch,
    )
    _loaded.append(cache.get(setup.model))


def _warm(args: tuple[str, str, list[str]]) -> int:
    """One image through the pipeline; the batch the engine probed."""
    src, scratch, keys = args
    model = _loaded[0]
    list(run_images(keys, open_storage(src), open_storage(scratch), model))
    return model.adapter.engine.max_batch


def _run_share(args: tuple[str, str, list[str], int, int]) -> int:
    """This process's share, as messages of ``per_message`` items; images done."""
    src_uri, scratch, keys, batch, per_message = args
    model = _loaded[0]
    engine = model.adapter.engine
    probed, engine.max_batch = engine.max_batch, batch
    src, dst = open_storage(src_uri), open_storage(scratch)
    done = 0
    try:
        for i in range(0, len(keys), per_message):
            done += sum(r.ok for r in run_images(keys[i : i + per_message], src, dst, model))
    finally:
        engine.max_batch = probed
    return done
