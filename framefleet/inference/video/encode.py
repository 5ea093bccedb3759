"""Annotated video out: H.264 in MP4 (``avc1``, plays in browsers), written with PyAV.

PyAV's wheels bundle FFmpeg with libx264 (OpenCV's wheels write only mp4v). Each segment
encodes its own frames as a part that starts on a keyframe; `join_parts` then copies the parts'
packets into one file with shifted timestamps, so the merge never re-encodes. B-frames are off
so that every part's decode order equals its presentation order and the joined timestamps stay
monotonic.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import cast

import av
import cv2
import numpy as np
from av.video.stream import VideoStream

from framefleet.core import defaults
from framefleet.inference.models.base import Image
from framefleet.inference.video.probe import stream_rate

CODEC = "libx264"


class H264Writer:
    """Writes BGR frames to an H.264 MP4 at a constant ``fps``.

    Args:
        path: output file. fps: frames a second (exact fraction). width, height: even pixels.
        threads: encoder threads.

    Example:
        >>> with H264Writer(Path("out.mp4"), Fraction(10), 640, 360) as writer:
        ...     writer.write(image)
    """

    def __init__(
        self, path: Path, fps: Fraction, width: int, height: int, threads: int = 1
    ) -> None:
        # 4:2:0 needs even sizes; an odd row or column is dropped (x264 would refuse the frame).
        self.width, self.height = width - width % 2, height - height % 2
        self._container = av.open(str(path), "w", format="mp4")
        stream = cast(VideoStream, self._container.add_stream(CODEC, rate=fps))
        stream.width, stream.height = self.width, self.height
        stream.pix_fmt = "yuv420p"
        stream.thread_count = max(1, threads)
        stream.options = {
            "preset": defaults.VIDEO_PRESET,
            "crf": str(defaults.VIDEO_CRF),
            "bf": "0",
        }
        self._stream = stream
        self._count = 0

    def write(self, image: Image) -> None:
        """Append one H×W×3 uint8 BGR frame."""
        if image.shape[0] != self.height or image.shape[1] != self.width:
            image = image[: self.height, : self.width]
        planar = np.asarray(cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420), np.uint8)
        frame = av.VideoFrame.from_ndarray(planar, format="yuv420p")
        frame.pts = self._count
        self._count += 1
        for packet in self._stream.encode(frame):
            self._container.mux(packet)

    def close(self) -> None:
        """Flush the encoder and finish the file."""
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()

    def __enter__(self) -> H264Writer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.close()
        else:
            self._container.close()


def join_parts(parts: Sequence[tuple[Path, int]], out: Path) -> int:
    """Copy the packets of ``parts`` (file, first frame index) into ``out``; return the frames.

    Each part's timestamps are shifted to its first frame's time, so the joined file has one
    continuous timeline at the parts' frame rate. Nothing is decoded or re-encoded.
    """
    total = 0
    with av.open(str(out), "w", format="mp4") as output:
        target: VideoStream | None = None
        for path, first in parts:
            with av.open(str(path)) as part:
                source = part.streams.video[0]
                if target is None:
                    target = output.add_stream_from_template(source)
                fps = stream_rate(source)
                tb = source.time_base
                if tb is None:
                    raise ValueError(f"part {path} has no time base")
                shift = round(Fraction(first) / fps / tb)
                for packet in part.demux(source):
                    if packet.size == 0:
                        continue
                    packet.pts = None if packet.pts is None else packet.pts + shift
                    packet.dts = None if packet.dts is None else packet.dts + shift
                    packet.stream = target
                    output.mux(packet)
                    total += 1
    return total
