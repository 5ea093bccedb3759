"""Decode the frames of one segment: seek to the keyframe before it, then decode forward.

Frames come out with their absolute index (rank in the video), so a segment never needs the
frames before its warm-up, and every segment numbers frames the same way.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import av
import cv2
import numpy as np

from framefleet.core.errors import VideoOpenError
from framefleet.inference.models.base import Image
from framefleet.inference.video.fetch import Source, open_container


@dataclass(frozen=True)
class Frame:
    """One decoded frame: absolute ``index``, presentation time ``t`` in seconds, BGR ``image``."""

    index: int
    t: float
    image: Image


def decode(
    path: Source,
    name: str,
    first_frame: int,
    first_pts: int | None,
    end_frame: int | None,
    threads: int,
) -> Iterator[Frame]:
    """Frames ``[first_frame, end_frame)`` of ``path``, in order (``end_frame`` None: to the end).

    Args:
        first_pts: presentation timestamp of ``first_frame`` (stream time base); None to decode
            from the start and count frames (containers without timestamps).
        threads: decoder threads.

    Raises:
        VideoOpenError: the file cannot be decoded, or it ends before ``end_frame``.
    """
    index = first_frame
    try:
        with open_container(path) as container:
            stream = container.streams.video[0]
            stream.thread_type = "FRAME"
            stream.thread_count = max(1, threads)
            start = stream.start_time or 0
            offset = float(start * stream.time_base) if stream.time_base else 0.0
            if first_pts is not None and first_pts > start:
                # backward=True lands on the keyframe at or before first_pts: frames decode
                # correctly only from a keyframe on.
                container.seek(first_pts, stream=stream, backward=True, any_frame=False)
            seen = 0
            for frame in container.decode(stream):
                if first_pts is None:
                    seen += 1
                    if seen <= first_frame:
                        continue
                elif frame.pts is None or frame.pts < first_pts:
                    continue
                t = float(frame.time) if frame.time is not None else 0.0
                yield Frame(index, round(t - offset, 6), to_bgr(frame))
                index += 1
                if end_frame is not None and index >= end_frame:
                    return
    except av.FFmpegError as exc:
        raise VideoOpenError(
            f"{name}: decoding failed at frame {index} ({exc}); the file is corrupt"
        ) from exc
    if end_frame is None:
        return
    raise VideoOpenError(
        f"{name}: the stream ends at frame {index}, before frame {end_frame} its index promised; "
        "the file is corrupt or truncated"
    )


def to_bgr(frame: av.VideoFrame) -> Image:
    """The frame as an H×W×3 uint8 BGR array.

    OpenCV's I420 conversion is several times faster than FFmpeg's swscale for the common
    4:2:0 case; other pixel formats (GIF palettes, 4:4:4...) go through swscale.
    """
    if frame.format.name == "yuv420p" and frame.width % 2 == 0 and frame.height % 2 == 0:
        planar = frame.to_ndarray(format="yuv420p")
        return np.asarray(cv2.cvtColor(planar, cv2.COLOR_YUV2BGR_I420), np.uint8)
    return np.asarray(frame.to_ndarray(format="bgr24"), np.uint8)
