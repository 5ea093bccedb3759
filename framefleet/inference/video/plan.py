"""Split a probed video into segment messages.

Segments tile the frames: segment k owns ``[k × L, min((k + 1) × L, frames))`` with
L = `framefleet.core.sampling.segment_frames`. Each also starts its tracker a few sampled
frames earlier (`framefleet.core.defaults.SEGMENT_OVERLAP`), at a frame whose timestamp it seeks
to, so its tracks can be linked with the previous segment's in the merge.
"""

from __future__ import annotations

from typing import Any

from framefleet.core import defaults
from framefleet.core.messages import VideoMerge, VideoPlan, VideoSegment
from framefleet.core.sampling import segment_frames
from framefleet.inference.video.probe import Probe


def plan_segments(
    plan: VideoPlan, probe: Probe, overlap: int = defaults.SEGMENT_OVERLAP
) -> list[VideoSegment]:
    """The segments of ``plan``'s video.

    Example:
        >>> [(s.start_frame, s.end_frame) for s in plan_segments(plan, probe)][:2]
        [(0, 100), (100, 200)]
    """
    fps = float(probe.fps)
    per = segment_frames(plan.segment_seconds, fps)
    sampling = plan.sampling
    segments = []
    count = -(-probe.frames // per)
    for k, start in enumerate(range(0, probe.frames, per)):
        warm = sampling.before(start, overlap, fps) if k else 0
        segments.append(
            VideoSegment(
                segment_no=k,
                start_frame=start,
                end_frame=min(start + per, probe.frames),
                segments=count,
                warm_frame=warm,
                warm_pts=probe.pts[warm] if probe.pts else None,
                **_shared(plan),
            )
        )
    return segments


def merge_message(plan: VideoPlan, probe: Probe) -> VideoMerge:
    """The merge of ``plan``'s video, to send once its last segment is recorded."""
    fps = float(probe.fps)
    per = segment_frames(plan.segment_seconds, fps)
    return VideoMerge(
        segments=-(-probe.frames // per),
        segment_frames=per,
        frames=probe.frames,
        fps=fps,
        width=probe.width,
        height=probe.height,
        header_frames=probe.header_frames,
        codec=probe.codec,
        **_shared(plan),
    )


def _shared(plan: VideoPlan) -> dict[str, Any]:
    """The fields a video's segments and merge copy from its plan."""
    fields = ("job_id", "input_uri", "output_uri", "model", "item", "every", "sample_fps")
    return {name: getattr(plan, name) for name in (*fields, "skip_static", "engine")}
