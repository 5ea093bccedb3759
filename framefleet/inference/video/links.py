"""Join per-segment track ids into one id space for the whole video.

Each segment's tracker numbers its own tracks. A segment also tracked a few sampled frames
before its start (its warm-up, written as ``overlap`` lines) that the previous segment owns, so
for those frames both segments tracked the same detections: a local track is mapped to the
previous segment's global track it overlaps most there (same class, IoU >= `MIN_IOU`). Tracks
with no such partner get new ids. Ids are handed out in order of first appearance.
"""

from __future__ import annotations

from collections import Counter, OrderedDict, defaultdict

import numpy as np
import numpy.typing as npt

from framefleet.core.results import Detections

MIN_IOU = 0.5
"""Boxes of two segments on the same frame are the same object from this overlap on."""

TAIL = 256
"""Owned frames remembered from the previous segment (more than any warm-up spans)."""


class TrackLinker:
    """Maps segment-local track ids to video-wide ones, segment by segment, in frame order.

    Example:
        >>> linker = TrackLinker()
        >>> linker.start_segment()
        >>> linker.owned(0, detections).tracker_id   # first segment: 1, 2, ...
        array([1])
    """

    def __init__(self) -> None:
        self._next = 1
        self._tail: OrderedDict[int, Detections] = OrderedDict()
        self._map: dict[int, int] = {}
        self._votes: defaultdict[int, Counter[int]] = defaultdict(Counter)

    def start_segment(self) -> None:
        """Forget the previous segment's local ids (its owned frames stay for matching)."""
        self._map = {}
        self._votes = defaultdict(Counter)

    def overlap(self, frame: int, local: Detections) -> None:
        """Use warm-up frame ``frame`` of the new segment to vote on its tracks' global ids."""
        previous = self._tail.get(frame)
        if previous is None or local.tracker_id is None or previous.tracker_id is None:
            return
        iou = _iou(local.xyxy, previous.xyxy)
        same = local.class_id[:, None] == previous.class_id[None, :]
        iou = np.where(same, iou, 0.0)
        for i in range(len(local)):
            if len(previous) == 0 or local.tracker_id[i] < 0:
                continue
            j = int(np.argmax(iou[i]))
            if iou[i, j] >= MIN_IOU and previous.tracker_id[j] >= 0:
                self._votes[int(local.tracker_id[i])][int(previous.tracker_id[j])] += 1

    def owned(self, frame: int, local: Detections) -> Detections:
        """``local`` with video-wide track ids (remembered for the next segment's warm-up)."""
        if local.tracker_id is None:
            return local
        ids = np.array([self._global(int(i)) for i in local.tracker_id], dtype=np.int64)
        linked = local.with_tracker_id(ids)
        self._tail[frame] = linked
        while len(self._tail) > TAIL:
            self._tail.popitem(last=False)
        return linked

    def _global(self, local: int) -> int:
        if local < 0:
            return -1
        if local not in self._map:
            taken = set(self._map.values())
            votes = [(n, g) for g, n in self._votes[local].items() if g not in taken]
            if votes:
                self._map[local] = max(votes)[1]
            else:
                self._map[local] = self._next
                self._next += 1
        return self._map[local]


def _iou(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    """(len(a), len(b)) intersection over union of xyxy boxes."""
    a64, b64 = a.astype(np.float64)[:, None, :], b.astype(np.float64)[None, :, :]
    w = np.clip(
        np.minimum(a64[..., 2], b64[..., 2]) - np.maximum(a64[..., 0], b64[..., 0]), 0, None
    )
    h = np.clip(
        np.minimum(a64[..., 3], b64[..., 3]) - np.maximum(a64[..., 1], b64[..., 1]), 0, None
    )
    inter = w * h
    area_a = (a64[..., 2] - a64[..., 0]) * (a64[..., 3] - a64[..., 1])
    area_b = (b64[..., 2] - b64[..., 0]) * (b64[..., 3] - b64[..., 1])
    union = area_a + area_b - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)
