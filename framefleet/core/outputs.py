"""Where results go: output keys mirror input keys, so reruns overwrite instead of duplicating.

For an input ``photos/a.jpg`` under the input root, the outputs under ``--out`` are::

    photos/a.jpg            the annotated image (same name and format as the input)
    photos/a.jpg.json       the result document (schema below)
    _framefleet/summary.json, _framefleet/failures.jsonl   written once, when the job completes
    _framefleet/results/{images,detections}/*.parquet     the results as tables (`core.tables`)

The document is always the input's key plus ``.json``; the annotated copy keeps the input's key
when framefleet writes that format (every image format it reads, and ``.mp4``), otherwise the
suffix of what it writes is added (``clips/b.gif`` gives ``clips/b.gif.mp4``).
A video ``clips/b.mkv`` gives ``clips/b.mkv.mp4`` (annotated, H.264), ``clips/b.mkv.json`` (its
document and summary) and ``clips/b.mkv.frames.jsonl`` (one sampled frame a line, in frame order);
an ``.mp4`` input keeps its name. While a video job runs, each segment writes its part under
``_framefleet/parts/<job>/<item>/<segment>.{mp4,jsonl}``; the merge deletes them once it has
published the whole video, and the end of the job deletes what a failed video left.

The result documents themselves (image and video) are `framefleet.core.documents`.
"""

from __future__ import annotations

import posixpath

from framefleet.core import defaults
from framefleet.core.errors import ObjectNotFound
from framefleet.core.storage import Storage


def result_key(item: str) -> str:
    """Key of the result document of input ``item``."""
    return f"{item}.json"


def annotated_key(item: str, video: bool = False) -> str:
    """Key of the annotated image or video of input ``item``."""
    ext = posixpath.splitext(item)[1].lower()
    if video:
        return item if ext == ".mp4" else f"{item}.mp4"
    # Every input image format is also one we encode, so the annotated copy keeps it.
    return item if ext in defaults.IMAGE_SUFFIXES else f"{item}.jpg"


def frames_key(item: str) -> str:
    """Key of the JSON Lines results of video ``item`` (one sampled frame a line)."""
    return f"{item}.frames.jsonl"


def part_key(job_id: str, item: str, segment: int, ext: str) -> str:
    """Key of segment ``segment``'s part of video ``item`` (``ext``: ``mp4`` or ``jsonl``).

    Example:
        >>> part_key("j1", "clips/a.mp4", 3, "mp4")
        '_framefleet/parts/j1/clips/a.mp4/00003.mp4'
    """
    return f"{parts_prefix(job_id)}{item}/{segment:05d}.{ext}"


def parts_prefix(job_id: str) -> str:
    """Prefix of every segment part of job ``job_id``."""
    return f"{defaults.REPORT_DIR}/parts/{job_id}/"


def table_prefix(table: str) -> str:
    """Prefix of the compacted files of results table ``table`` (``images``, ``detections``)."""
    return f"{defaults.REPORT_DIR}/results/{table}/"


def table_parts_prefix(table: str) -> str:
    """Prefix of the parts of results table ``table`` not compacted yet (one per message)."""
    return f"{defaults.REPORT_DIR}/results/parts/{table}/"


def table_part_key(table: str, name: str) -> str:
    """Key of part ``name`` of results table ``table``.

    Example:
        >>> table_part_key("images", "j1-b0000003-9f2c41d0")
        '_framefleet/results/parts/images/j1-b0000003-9f2c41d0.parquet'
    """
    return f"{table_parts_prefix(table)}{name}.parquet"


def report_key(name: str) -> str:
    """Key of a job report file (``summary.json``, ``failures.jsonl``)."""
    return f"{defaults.REPORT_DIR}/{name}"


def is_report_key(key: str) -> bool:
    """True for keys framefleet itself writes under an output root (never inputs)."""
    return key.startswith(f"{defaults.REPORT_DIR}/")


def holds_nothing(dst: Storage) -> bool:
    """True if nothing at all is under the output root ``dst`` (one list request), so no item
    can have outputs of an earlier run there and workers need not look for them. A folder not
    created yet holds nothing. `submit` calls it before any work, so it is also the check that
    the output can be reached at all.

    Raises:
        StorageError: the output cannot be listed: its bucket does not exist (`BucketNotFound`),
            the endpoint is unreachable, or the credentials are refused.
    """
    try:
        return next(iter(dst.list()), None) is None
    except ObjectNotFound:  # a local output folder that the first write creates
        return True
