"""One whole video in this process: plan, segments and merge in a row (``framefleet run``).

The same code paths as the fleet's, so a local run writes exactly the fleet's outputs.
"""

from __future__ import annotations

from dataclasses import replace

from framefleet.core.messages import VideoPlan
from framefleet.core.sampling import Sampling
from framefleet.core.storage import Storage
from framefleet.inference.loaded import LoadedModel
from framefleet.inference.pipeline import ItemResult, failure
from framefleet.inference.video.fetch import local_video
from framefleet.inference.video.merge import delete_parts, merge_video
from framefleet.inference.video.plan import merge_message, plan_segments
from framefleet.inference.video.probe import probe
from framefleet.inference.video.segment import process_segment


def process_video(
    item: str,
    src: Storage,
    dst: Storage,
    model: LoadedModel,
    sampling: Sampling | None = None,
    job_id: str = "local",
    threads: int = 1,
) -> ItemResult:
    """Run ``model`` over video ``item`` of ``src``; write its outputs to ``dst``.

    Example:
        >>> process_video("walk.mp4", open_storage("in/"), open_storage("out/"), model).ok
        True
    """
    sampling = sampling or Sampling()
    try:
        with local_video(src, item) as path:
            video = probe(path, src.uri_for(item))
    except Exception as exc:  # a bad video is one failed item
        return failure(item, exc)
    plan = VideoPlan(
        job_id=job_id,
        input_uri=src.uri,
        output_uri=dst.uri,
        model=model.spec.name,
        item=item,
        segment_seconds=(video.frames + 1) / float(video.fps),  # one segment
        every=sampling.every,
        sample_fps=sampling.fps,
        skip_static=sampling.skip_static,
    )
    merge = merge_message(plan, video)
    done: list[int] = []
    try:
        for segment in plan_segments(plan, video):
            result = process_segment(segment, src, dst, model, threads)
            if not result.ok:
                return replace(result, item=item)
            done.append(segment.segment_no)
        return merge_video(merge, dst, src.uri_for(item), model.info, model.adapter.labels)
    finally:  # published or failed, the parts are scratch
        delete_parts(job_id, item, done, dst)
