"""What a video file holds, found by demuxing it (cheap: no frame is decoded).

A container's header can lie about its frame count (``CAP_PROP_FRAME_COUNT`` is the header's
claim), so the frames are counted from the packets themselves, and the presentation timestamp of
each frame is kept: segments seek by timestamp, and a frame's index is its rank in this list.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from framefleet.core.errors import VideoOpenError

FALLBACK_FPS = Fraction(25)
"""Frame rate assumed for a container that states none (only for timestamps and sampling)."""


@dataclass(frozen=True)
class Probe:
    """A video's first video stream.

    Attributes:
        frames: frames counted from the packets.
        header_frames: frames the container's header claims (0: it does not say).
        fps: average frame rate (exact fraction); width, height: pixels; codec: decoder name.
        pts: presentation timestamps in stream time base, sorted; empty if the container has
            none (then segments decode from the start and count frames).
    """

    frames: int
    header_frames: int
    fps: Fraction
    width: int
    height: int
    codec: str
    pts: tuple[int, ...]

    def info(self) -> dict[str, object]:
        """What a result document says about the video."""
        return {
            "width": self.width,
            "height": self.height,
            "fps": float(self.fps),
            "frames": self.frames,
            "header_frames": self.header_frames,
            "codec": self.codec,
        }


def probe(path: Path, name: str) -> Probe:
    """Count the frames of ``path`` (called ``name`` in messages) and read its stream facts.

    Raises:
        VideoOpenError: not a video FFmpeg opens, no video stream, no frame, or fewer frames
            than the header claims (a truncated file, or a lying header).
    """
    if path.stat().st_size == 0:
        raise VideoOpenError(f"{name} is empty (0 bytes); re-upload the video")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoOpenError(
                    f"{name} has no video stream with frames (an audio file, or an empty video)"
                )
            stream = container.streams.video[0]
            header = int(stream.frames or 0)
            fps = stream_rate(stream)
            codec = stream.codec_context.name
            width, height = stream.codec_context.width, stream.codec_context.height
            stamps: list[int] = []
            count = 0
            for packet in container.demux(stream):
                if packet.size == 0:  # the flush packet demux yields at the end
                    continue
                count += 1
                if packet.pts is not None:
                    stamps.append(int(packet.pts))
    except VideoOpenError:
        raise
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise VideoOpenError(
            f"cannot read {name} as a video ({exc}); the file is corrupt, truncated, or not a "
            "video format FFmpeg knows (MP4/H.264, MKV, WebM, AVI, GIF...)"
        ) from exc
    if count == 0:
        raise VideoOpenError(f"{name} has a video stream with no frame; nothing to process")
    if header and count < header:
        raise VideoOpenError(
            f"{name}: its header claims {header} frames but only {count} are in the file; the file "
            "is truncated (re-upload or re-encode it)"
        )
    if width <= 0 or height <= 0:
        raise VideoOpenError(f"{name}: the video stream has no frame size ({width}x{height})")
    pts = tuple(sorted(stamps)) if len(stamps) == count else ()
    return Probe(count, header, Fraction(fps), width, height, codec, pts)


def stream_rate(stream: av.video.stream.VideoStream) -> Fraction:
    """The stream's average frame rate as an exact fraction (every part of the fleet uses this
    one function, so sampling and timestamps agree between plan, segments and merge)."""
    return Fraction(stream.average_rate or stream.guessed_rate or FALLBACK_FPS)
