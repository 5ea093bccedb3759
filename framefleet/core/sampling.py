"""Which frames of a video are inferred: every N-th frame, or F frames a second.

A frame's fate depends only on its absolute index (never on where a segment starts), so every
segment of every split of a video samples the same frames, and the merge can check that each
sampled frame is covered exactly once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from framefleet.core import defaults
from framefleet.core.errors import ConfigError


@dataclass(frozen=True)
class Sampling:
    """How a video job picks frames.

    Args:
        every: infer frames whose index is a multiple of ``every`` (1: all frames).
        fps: if > 0, infer about ``fps`` frames a second instead (the first frame of each
            1/``fps`` s tick of the video's own clock); overrides ``every``.
        skip_static: skip inference on sampled frames that barely differ from the last inferred
            one (motion gating); the results say they were skipped.

    Example:
        >>> Sampling(every=5).picks(10, video_fps=25.0)
        True
        >>> [i for i in range(10) if Sampling(fps=5).picks(i, video_fps=25.0)]
        [0, 5]
    """

    every: int = 1
    fps: float = 0.0
    skip_static: bool = False

    def __post_init__(self) -> None:
        if self.every < 1:
            raise ConfigError(f"--every must be at least 1 frame, got {self.every}")
        if self.fps < 0 or not math.isfinite(self.fps):
            raise ConfigError(f"--fps must be a positive number of frames a second, got {self.fps}")

    def to_json(self) -> dict[str, object]:
        """What a result document says about the sampling."""
        return {"every": self.every, "fps": self.fps, "skip_static": self.skip_static}

    def picks(self, index: int, video_fps: float) -> bool:
        """True if frame ``index`` (0-based, absolute) is inferred."""
        if self.fps <= 0 or self.fps >= video_fps:
            return index % self.every == 0 if self.fps <= 0 else True
        # The frame that starts a new tick of the sampling clock; integer ticks, so floating
        # error cannot make two segments disagree about a boundary frame.
        return index == 0 or _tick(index, self.fps, video_fps) != _tick(
            index - 1, self.fps, video_fps
        )

    def before(self, index: int, count: int, video_fps: float) -> int:
        """The index of the ``count``-th sampled frame before ``index`` (0 if there are fewer)."""
        found = 0
        i = index
        while i > 0 and found < count:
            i -= 1
            if self.picks(i, video_fps):
                found += 1
        return i


def _tick(index: int, fps: float, video_fps: float) -> int:
    return math.floor(index * fps / video_fps + 1e-9)


def segment_frames(segment_seconds: float, video_fps: float) -> int:
    """Frames per segment for ``segment_seconds`` at ``video_fps`` (at least 1)."""
    if segment_seconds <= 0:
        raise ConfigError(f"--segment-seconds must be positive, got {segment_seconds}")
    return max(1, round(segment_seconds * video_fps))


DEFAULT = Sampling(every=defaults.SAMPLE_EVERY)
"""Every frame."""
