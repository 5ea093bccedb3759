"""Trackers: objects that give detections a ``tracker_id`` that lasts across frames.

A tracker is one object with one method, ``update(detections) -> detections``. Each video segment
makes its own tracker, so two segments (maybe in two processes) never share id counters; the
merge maps each segment's ids onto one id space (`framefleet.inference.video.merge`).
"""

from __future__ import annotations

import warnings
from typing import Protocol

import numpy as np

from framefleet.core.results import Detections


class Tracker(Protocol):
    """Gives each row of successive frames' detections a track id (-1: not tracked)."""

    def update(self, detections: Detections) -> Detections:
        """The same rows as ``detections``, with ``tracker_id`` set."""
        ...


class ByteTracker:
    """supervision's ByteTrack behind the `Tracker` protocol.

    ByteTrack returns only the rows it tracks; here every input row is kept and rows it does
    not track get -1, so results never lose a detection because of tracking.

    Args:
        frame_rate: rate of the frames given to `update` (sampled frames a second), which
            scales how long a lost track is kept.

    Example:
        >>> tracker = ByteTracker(frame_rate=10.0)
        >>> tracker.update(adapter(frame)).tracker_id
        array([1, 2])
    """

    def __init__(self, frame_rate: float) -> None:
        import supervision as sv

        # supervision 0.30 marks ByteTrack deprecated in favour of the `trackers` package, which
        # needs the GUI build of OpenCV (opencv-python) and would clash with the headless one the
        # workers use; the class itself is maintained and has per-instance id counters.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            self._tracker = sv.ByteTrack(frame_rate=frame_rate)
        self._sv = sv

    def update(self, detections: Detections) -> Detections:
        """See `Tracker.update`."""
        n = len(detections)
        rows = self._sv.Detections(
            xyxy=detections.xyxy.astype(np.float32).reshape(-1, 4),
            confidence=detections.confidence.astype(np.float32),
            class_id=detections.class_id.astype(int),
            data={"row": np.arange(n)},
        )
        tracked = self._tracker.update_with_detections(rows)
        ids = np.full(n, -1, dtype=np.int64)
        if len(tracked) and tracked.tracker_id is not None:
            ids[np.asarray(tracked.data["row"], dtype=int)] = tracked.tracker_id
        return detections.with_tracker_id(ids)


class NoTracker:
    """For tasks whose rows are not objects (classification, segmentation): no track ids."""

    def update(self, detections: Detections) -> Detections:
        """``detections`` unchanged."""
        return detections


def preload() -> None:
    """Import supervision now (about a second, mostly SciPy), so a worker pays it at boot, before
    it forks its pool, instead of in its first segment."""
    import supervision  # noqa: F401


def tracker_for(task: str, frame_rate: float) -> Tracker:
    """A fresh tracker for a model of ``task`` (``detection``, ``faces`` and ``pose`` are
    tracked)."""
    if task in ("detection", "faces", "pose"):
        return ByteTracker(frame_rate)
    return NoTracker()
