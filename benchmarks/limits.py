"""The machine's limit: the whole per-image job in P plain processes, nothing else.

Each process loads the model once, then for each of its images: read the bytes (a file, or one
boto3 GET), decode, preprocess, forward, postprocess, draw, encode, and write the JSON and the
annotated image (two files, or two boto3 PUTs). No queue, no job state, one engine thread per
process. framefleet's ratio is measured against this.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2

from framefleet.core.modelstore import ModelStore
from framefleet.core.registry import load_registry
from framefleet.inference.annotate import annotate
from framefleet.inference.imageio import decode_image, encode_image


@dataclass(frozen=True)
class Share:
    """One process's work: its keys, where they are, and how to run the model."""

    keys: list[str]
    warm: list[str]  # done before the clock starts, as a running worker has done others before
    model: str
    model_dir: Path
    engine: str
    threads: int
    source: str  # a local folder, or "s3://bucket/prefix/"
    target: str
    s3_env: dict[str, str]


def _io(share: Share) -> tuple[Any, Any]:
    """(read(key) -> bytes, write(key, bytes)) on a local folder or with plain boto3."""
    if not share.source.startswith("s3://"):
        src, dst = Path(share.source), Path(share.target)
        return (lambda key: (src / key).read_bytes()), (
            lambda key, data: (dst / key).write_bytes(data)
        )
    import boto3

    os.environ.update(share.s3_env)
    client = boto3.session.Session().client("s3")
    in_bucket, _, in_prefix = share.source[5:].partition("/")
    out_bucket, _, out_prefix = share.target[5:].partition("/")

    def read(key: str) -> bytes:
        return client.get_object(Bucket=in_bucket, Key=in_prefix + key)["Body"].read()

    def write(key: str, data: bytes) -> None:
        client.put_object(Bucket=out_bucket, Key=out_prefix + key, Body=data)

    return read, write


def _run_share(share: Share, barrier: Any) -> float:
    cv2.setNumThreads(share.threads)
    from framefleet.inference.models import load_adapter

    spec = load_registry().get(share.model)
    adapter = load_adapter(
        spec,
        ModelStore(share.model_dir, download=False),
        engine=share.engine,
        threads=share.threads,
    )
    read, write = _io(share)

    def work(key: str, prefix: str = "") -> None:
        image = decode_image(read(key), key)
        detections = adapter(image)
        name = prefix + key
        write(name + ".jpg", encode_image(annotate(image, detections, adapter.labels), ".jpg"))
        document = {"source": key, "results": detections.to_json()}
        write(name + ".json", json.dumps(document).encode())

    for key in share.warm:
        work(key, "warm-")
    barrier.wait()
    start = time.perf_counter()
    for key in share.keys:
        work(key)
    return time.perf_counter() - start


def _child(args: tuple[Share, Any]) -> float:
    return _run_share(*args)


def plain_limit(
    keys: list[str],
    *,
    processes: int,
    model: str,
    model_dir: Path,
    engine: str,
    source: str,
    target: str,
    s3_env: dict[str, str] | None = None,
    warm: int = 0,
) -> float:
    """Wall seconds for ``processes`` plain processes to do ``keys`` (models loaded and
    ``warm`` of the keys done by each process first, untimed)."""
    threads = max(1, (os.cpu_count() or 1) // processes)
    ctx = mp.get_context("spawn")
    with ctx.Manager() as manager:
        barrier = manager.Barrier(processes + 1)
        shares = [
            (
                Share(
                    keys[i::processes],
                    keys[i::processes][:warm],
                    model,
                    model_dir,
                    engine,
                    threads,
                    source,
                    target,
                    dict(s3_env or {}),
                ),
                barrier,
            )
            for i in range(processes)
        ]
        with ctx.Pool(processes) as pool:
            pending = pool.map_async(_child, shares)
            barrier.wait()
            start = time.perf_counter()
            pending.get()
            return time.perf_counter() - start
