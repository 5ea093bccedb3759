"""The live progress display: rendered snapshots fit 80 columns, `submit --wait` redraws in place
in a real terminal (tmux), and logs get plain lines."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from browser import artifacts_dir
from fleet import REPO, Fleet, cli
from rich.console import Console
from terminal import Terminal
from test_e2e import run_cli, upload
from test_operations import SHORT_CLIP

from framefleet.core.jobrecord import JobRecord, JobStatus, VideoProgress
from framefleet.core.settings import Settings
from framefleet.core.storage import open_storage
from framefleet.state.jobs import JobStore
from producer.progress import eta_s, plain_line, render

NOW = 1_800_000_000.0


def snapshot(**changes: object) -> JobRecord:
    base: dict[str, object] = {
        "job_id": "20261125-030000-abc123",
        "input_uri": "s3://in/",
        "output_uri": "s3://out/",
        "model": "yolox-nano",
        "status": JobStatus.RUNNING,
        "total": 300,
        "done": 118,
        "failed": 2,
        "listed": True,
        "created_at": NOW - 30,
        "started_at": NOW - 20,
        "frames": 118,
    }
    return JobRecord(**{**base, **changes})  # type: ignore[arg-type]


LONG_VIDEOS = tuple(
    VideoProgress(
        f"cameras/north-gate/2026-11-2{i}/recording_{i:03d}_1920x1080.mp4", i, 9, i * 250, 2250
    )
    for i in range(8)
)


@pytest.mark.parametrize(
    "record",
    [
        pytest.param(snapshot(), id="running"),
        # still listing: the total is a lower bound, no ETA yet
        pytest.param(snapshot(listed=False, status=JobStatus.LISTING), id="listing"),
        # a million items, eight long videos with long names, an error line
        pytest.param(
            snapshot(
                total=1_234_567,
                done=456_789,
                failed=1_234,
                frames=900_000,
                videos=LONG_VIDEOS,
                error="listing stopped after 1,234,567 items: S3 unreachable",
            ),
            id="big-with-videos",
        ),
        pytest.param(snapshot(status=JobStatus.DONE, done=298, finished_at=NOW - 1), id="done"),
    ],
)
def test_render_fits_80_columns(record: JobRecord) -> None:
    console = Console(width=80, record=True, force_terminal=True, color_system="truecolor")
    console.print(render(record, now=NOW))
    lines = console.export_text().splitlines()
    assert all(len(line) <= 80 for line in lines), "\n".join(lines)
    text = "\n".join(lines)
    assert record.job_id in lines[0]
    assert f"{record.done:,} done" in text
    assert "items/s" in text
    assert "images/s" in text
    assert "ETA" in text
    if record.videos:  # five running videos shown, the rest counted; file names keep their tail
        assert "recording_007_1920x1080.mp4" in text
        assert "7/9 seg" in text
        assert "+3 more videos (0 of 8 finished)" in text
        assert record.error in text
    assert len(plain_line(record, now=NOW)) <= 80 or record.videos


def test_eta_counts_frames_of_long_videos() -> None:
    # All 99 photos are done at 10 items/s; one video with 9,000 frames left runs at
    # 20 frames/s: an item-based ETA would say 0.1 s, the frame-based one 450 s.
    video = VideoProgress(
        "long.mp4", segments_done=1, segments_total=10, frames_done=1000, frames_total=10_000
    )
    record = snapshot(
        total=100, done=99, failed=0, frames=198, videos=(video,), started_at=NOW - 9.9
    )
    assert record.eta_s(now=NOW) == pytest.approx(0.1)
    assert eta_s(record, now=NOW) == pytest.approx(9000 / record.frame_rate(now=NOW))
    assert eta_s(record, now=NOW) > 400


@pytest.mark.integration
def test_submit_wait_redraws_in_place_in_an_80_column_terminal(
    settings: Settings, fleet: Fleet, tmp_path: Path, job_store: JobStore, media_images: list[Path]
) -> None:
    src = open_storage(str(tmp_path / "in"))
    upload(src, media_images[:4])
    src.write_bytes("broken.jpg", b"not a jpeg")
    src.write_bytes("clips/parking.mp4", SHORT_CLIP.read_bytes())  # 3.3 s: 4 segments of 1 s
    terminal = Terminal(tmp_path, width=80, height=24)
    try:
        argv = cli(
            "submit", src.uri, "--out", str(tmp_path / "out"), "--wait", "--segment-seconds", "1"
        )
        terminal.run(argv, fleet.env(), cwd=REPO)
        fleet.start("w1")  # the display redraws at 0/6 while the worker starts, then advances
        assert terminal.wait(timeout_s=180) == 1  # one item failed
        history = terminal.screen(history=True)
    finally:
        terminal.close()
    saved = artifacts_dir() / "progress-terminal.txt"
    saved.write_text(history)
    print(f"terminal: {saved}")
    lines = history.splitlines()
    record = job_store.recent(1)[0]
    job_id = record.job_id
    # One display, redrawn in place: its header is on the screen once, however many redraws.
    header = f"job {job_id}  model yolox-nano"
    assert sum(line.startswith(header) for line in lines) == 1, history
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    end = next(i for i, line in enumerate(lines) if line.startswith(f"job       {job_id}"))
    display = lines[start:end]
    assert all(len(line) <= 80 for line in display), history  # -J joins wrapped lines
    assert display[0] == f"{header}  done"
    assert any(f"100%  {record.total}/{record.total}" in line for line in display), history
    assert any(line.startswith(f"{record.done} done  1 failed  0 pending") for line in display)
    # The video's row: its segments, all done.
    (video,) = record.videos
    assert video.segments_total >= 3
    row = next(line for line in display if line.startswith("clips/parking.mp4"))
    assert f"{video.segments_total}/{video.segments_total} seg" in row, history
    assert "broken.jpg: ImageDecodeError" in history  # the summary follows the display


@pytest.mark.integration
def test_watch_prints_plain_lines_when_not_a_terminal(
    settings: Settings, fleet: Fleet, tmp_path: Path, job_store: JobStore, media_images: list[Path]
) -> None:
    from framefleet.queue import create_app
    from producer.submit import submit

    src = open_storage(str(tmp_path / "in"))
    upload(src, media_images[:2])
    done = submit(settings, create_app(settings), src.uri, str(tmp_path / "out"), "yolox-nano")
    fleet.start("w1")
    started = time.monotonic()
    result = run_cli(settings, "status", done.job_id or "", "--watch")
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 120
    lines = result.stderr.splitlines()
    assert "\x1b" not in result.stderr  # no escape codes
    assert "\r" not in result.stderr  # no carriage-return redraws
    assert lines[-1].startswith("100% 2/2 | 0 failed |"), result.stderr
    assert lines[-1].endswith("| done")
    assert all(len(line) <= 80 for line in lines)
