"""What a person sees of a job: the live display, plain progress lines, the status block.

The live display is one render function over a `JobRecord` snapshot (`render`), drawn by rich's
`Live` in place: no scrolling redraws, and it fits an 80-column terminal. When the output is not a
terminal (a log file, CI), `watch` prints one short `plain_line` when something changed instead.
`watch` is only the loop: how it waits between snapshots is its ``wait`` argument, by default
`JobStore.wait_for_change`, which blocks on a Redis notification of the job's completion instead
of sleeping, so a watch ends within a round trip of the job.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from framefleet.core.jobrecord import JobRecord, JobStatus, VideoProgress
from framefleet.state.follow import FollowInfo
from framefleet.state.jobs import JobStore

MAX_VIDEO_ROWS = 5
"""Videos shown one per row in the live display; the rest are counted in one line."""

PLAIN_EVERY_S = 30.0
"""Seconds between plain lines when nothing changed (a heartbeat for logs)."""

_STATUS_STYLE = {"done": "green", "failed": "red", "cancelled": "yellow"}


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = round(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def eta_s(record: JobRecord, now: float | None = None) -> float | None:
    """Seconds left, or None while unknown.

    Items are the unit until videos report their frame totals; then the unit is the frame (an
    image is one), so a job waiting on one long video does not claim to end in seconds because
    all its photos are done.
    """
    if record.finished:
        return 0.0
    open_videos = [v for v in record.videos if not v.finished]
    if not open_videos or any(v.frames_total is None for v in open_videos):
        return record.eta_s(now)
    rate = record.frame_rate(now)
    if not record.listed or rate <= 0:
        return None
    frames_left = sum(max(0, (v.frames_total or 0) - v.frames_done) for v in open_videos)
    images_left = max(0, record.total - record.processed - len(open_videos))
    return (frames_left + images_left) / rate


def _total(record: JobRecord) -> str:
    return f"{record.total:,}" if record.listed else f"{record.total:,}+"


def _left(record: JobRecord) -> str:
    """Items without an outcome: pending while the job runs, cancelled once it was stopped."""
    if record.status in (JobStatus.CANCELLED, JobStatus.FAILED):
        return f"{record.cancelled:,} cancelled"
    return f"{max(0, record.total - record.processed):,} pending"


def _share(done: int, total: int) -> float:
    return min(1.0, done / total) if total else 0.0


def plain_line(record: JobRecord, now: float | None = None) -> str:
    """One short line for logs (80 characters up to a million items), e.g.
    ``40% 120/300 | 2 failed | 6.1 items/s 6 images/s | ETA 0:29``."""
    pct = f"{_share(record.processed, record.total):.0%}" if record.listed else "listing"
    line = (
        f"{pct} {record.processed:,}/{_total(record)} | {record.failed:,} failed | "
        f"{record.rate(now):.1f} items/s {record.frame_rate(now):.0f} images/s | "
        f"ETA {_duration(eta_s(record, now))}"
    )
    if record.videos:
        seg_done = sum(v.segments_done for v in record.videos)
        seg_total = sum(v.segments_total for v in record.videos)
        line += f" | seg {seg_done}/{seg_total}"
    if record.status.value not in ("running", "listing"):
        line += f" | {record.status.value}"
    return line


def _video_rows(videos: tuple[VideoProgress, ...]) -> list[RenderableType]:
    if not videos:
        return []
    # Running videos first, most advanced first: the rows a person is waiting on.
    ordered = sorted(videos, key=lambda v: (v.finished, -_share(v.segments_done, v.segments_total)))
    grid = Table.grid(padding=(0, 1), expand=True)
    grid.add_column(ratio=2, no_wrap=True, overflow="ellipsis")  # the tail names the file
    grid.add_column(ratio=1, min_width=8)
    grid.add_column(justify="right", no_wrap=True)
    for video in ordered[:MAX_VIDEO_ROWS]:
        frames = f"{video.frames_done:,}"
        if video.frames_total is not None:
            frames += f"/{video.frames_total:,}"
        name = video.item if len(video.item) <= 34 else "…" + video.item[-33:]
        grid.add_row(
            Text(name, style="dim" if video.finished else ""),
            ProgressBar(total=max(video.segments_total, 1), completed=video.segments_done),
            f"{video.segments_done}/{video.segments_total} seg  {frames} fr",
        )
    rows: list[RenderableType] = [grid]
    if len(ordered) > MAX_VIDEO_ROWS:
        finished = sum(v.finished for v in ordered)
        rows.append(
            Text(
                f"+{len(ordered) - MAX_VIDEO_ROWS} more videos ({finished} of {len(ordered)} "
                "finished)",
                style="dim",
            )
        )
    return rows


def render(record: JobRecord, now: float | None = None) -> RenderableType:
    """The live display of one snapshot: header, overall bar, counts and speed, video rows.

    Example:
        >>> from rich.console import Console
        >>> Console(width=80).print(render(store.get(job_id)))
    """
    status = record.status.value
    header = Text.assemble(
        ("job ", "dim"),
        (record.job_id, "bold"),
        ("  model ", "dim"),
        record.model,
        "  ",
        (status, _STATUS_STYLE.get(status, "cyan")),
    )
    bar = Table.grid(padding=(0, 1), expand=True)
    bar.add_column(ratio=1)
    bar.add_column(justify="right", no_wrap=True)
    bar.add_row(
        ProgressBar(
            total=max(record.total, 1),
            completed=record.processed,
            pulse=not record.listed and record.total == 0,
        ),
        f"{_share(record.processed, record.total):4.0%}  {record.processed:,}/{_total(record)}",
    )
    counts = Text.assemble(
        (f"{record.done:,} done", "green"),
        "  ",
        (f"{record.failed:,} failed", "red" if record.failed else "dim"),
        f"  {_left(record)}",
        ("" if record.listed else " (listing)", "dim"),
        ("  ETA ", "dim"),
        _duration(eta_s(record, now)),
    )
    speed = Text.assemble(
        f"{record.rate(now):.1f} items/s  {record.frame_rate(now):.1f} images/s",
        ("  elapsed ", "dim"),
        _duration(record.elapsed_s(now)),
    )
    parts: list[RenderableType] = [header, bar, counts, speed, *_video_rows(record.videos)]
    if record.error:
        parts.append(Text(f"error: {record.error}", style="red"))
    return Group(*parts)


def watch(
    jobs: JobStore,
    job_id: str,
    console: Console | None = None,
    interval_s: float = 0.5,
    timeout_s: float | None = None,
    wait: Callable[[float], object] | None = None,
) -> JobRecord:
    """Show the job's progress until it finishes (or ``timeout_s`` passes); return the last
    snapshot.

    On a terminal the display is redrawn in place; otherwise a `plain_line` is printed when the
    counts change, and at least every `PLAIN_EVERY_S` seconds.

    Args:
        console: where to draw (default: stderr).
        interval_s: seconds between snapshots, passed to ``wait``.
        wait: blocks between snapshots for at most its argument; by default
            ``jobs.wait_for_change``, which returns early the moment the job finishes.
    """
    console = console or Console(stderr=True)
    if wait is None:

        def wait(timeout_s: float) -> bool:
            return jobs.wait_for_change(job_id, timeout_s)

    deadline = None if timeout_s is None else time.monotonic() + timeout_s

    def over(record: JobRecord) -> bool:
        return record.finished or (deadline is not None and time.monotonic() > deadline)

    record = jobs.get(job_id)
    if console.is_terminal:
        with Live(render(record), console=console, auto_refresh=False) as live:
            while not over(record):
                wait(interval_s)
                record = jobs.get(job_id)
                live.update(render(record), refresh=True)
        return record
    last_counts: tuple[int, ...] | None = None
    last_print = 0.0
    while True:
        counts = (record.total, record.done, record.failed, len(record.videos))
        if counts != last_counts or time.monotonic() - last_print > PLAIN_EVERY_S or over(record):
            console.out(plain_line(record), highlight=False)
            last_counts, last_print = counts, time.monotonic()
        if over(record):
            return record
        wait(interval_s)
        record = jobs.get(job_id)


def follow_lines(info: FollowInfo, now: float | None = None) -> list[str]:
    """What `status` adds for a job that follows its input (`submit --follow`)."""
    now = time.time() if now is None else now
    if info.following:
        ago = f", last listed {_duration(now - info.beat)} ago" if info.beat else ""
        limits = [f"until {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(info.until))}"]
        limits = (limits if info.until else []) + (
            [f"at most {info.max_items} items"] if info.max_items else []
        )
        state = f"following every {info.interval_s:g} s{ago}" + "".join(f", {x}" for x in limits)
    else:
        state = f"closed ({info.reason})" if info.reason else "closed"
    lag = (
        f"lag       arrival to result p50 {info.lag_p50_s:.2f} s, p95 {info.lag_p95_s:.2f} s "
        f"(last {info.lags} items)"
        if info.lag_p50_s is not None and info.lag_p95_s is not None
        else "lag       (no result yet)"
    )
    rewrites = f", {info.rewrites} of them rewrites" if info.rewrites else ""
    return [f"follow    {state}", f"seen      {info.seen} items{rewrites}", lag]


def status_block(record: JobRecord, follow: FollowInfo | None = None) -> str:
    """Everything `framefleet status` prints about one job (and its follow state, if any)."""
    listing = " so far (following)" if follow and follow.following else " so far (still listing)"
    lines = [
        f"job       {record.job_id}  ({record.status.value})",
        f"model     {record.model}",
        f"input     {record.input_uri}",
        f"output    {record.output_uri}",
        f"items     {record.total}{'' if record.listed else listing}: "
        f"{record.done} done, {record.failed} failed, {_left(record)}",
        f"elapsed   {_duration(record.elapsed_s())}   "
        f"ETA {_duration(eta_s(record)) if not record.finished else '-'}",
        f"speed     {record.rate():.2f} items/s, {record.frame_rate():.1f} images/s "
        f"({record.frames} images and video frames done)",
    ]
    if record.videos:
        done = sum(v.finished for v in record.videos)
        seg_done = sum(v.segments_done for v in record.videos)
        seg_total = sum(v.segments_total for v in record.videos)
        lines.append(
            f"videos    {done}/{len(record.videos)} finished, segments {seg_done}/{seg_total}"
        )
        for video in record.videos[:MAX_VIDEO_ROWS]:
            state = f"  {video.state}" if video.state else ""
            lines.append(
                f"  {video.item}  {video.segments_done}/{video.segments_total} segments{state}"
            )
        if len(record.videos) > MAX_VIDEO_ROWS:
            lines.append(f"  ... {len(record.videos) - MAX_VIDEO_ROWS} more videos")
    if follow is not None:
        lines += follow_lines(follow)
    if record.error:
        lines.append(f"error     {record.error}")
    return "\n".join(lines)


def summary_table(
    record: JobRecord,
    failures: list[tuple[str, dict[str, object]]],
    follow: FollowInfo | None = None,
) -> str:
    """Per-class counts, failures with reasons, and throughput (and the follow state, if any)."""
    lines = [status_block(record, follow), "", "detections per class:"]
    if record.classes:
        width = max(len(name) for name in record.classes)
        lines += [f"  {name:<{width}}  {count:>6}" for name, count in record.classes.items()]
    else:
        lines.append("  (none)")
    lines.append(f"failures: {record.failed}")
    for item, reason in failures[:20]:
        lines.append(f"  {item}: {reason.get('error')}: {reason.get('message')}")
    if len(failures) > 20:
        lines.append(f"  ... {len(failures) - 20} more in _framefleet/failures.jsonl")
    return "\n".join(lines)
