"""The job report: written when a job completes, opened in a real headless Chromium: totals, the
charts drawn, gallery images loaded, failures listed, the annotated video played."""

from __future__ import annotations

import math
import time
from pathlib import Path

import cv2
import pytest
from browser import screenshot
from fleet import Fleet, wait_for_job
from test_e2e import run_cli, upload
from test_operations import SHORT_CLIP

from framefleet.core.documents import VideoDocument, read_document
from framefleet.core.outputs import annotated_key, report_key, result_key
from framefleet.core.settings import Settings
from framefleet.core.storage import open_storage
from framefleet.queue import create_app
from framefleet.state.jobs import JobStore
from producer.submit import submit

pytestmark = pytest.mark.integration


def browser_plays(path: Path) -> bool:
    """True for H.264, which Chromium plays; OpenCV's own mp4v (MPEG-4 part 2) it does not."""
    capture = cv2.VideoCapture(str(path))
    fourcc = int(capture.get(cv2.CAP_PROP_FOURCC))
    capture.release()
    codec = fourcc.to_bytes(4, "little").decode(errors="replace").lower()
    return codec in ("avc1", "h264", "x264")


def wait_for_file(path: Path, fleet: Fleet, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.is_file():
        if time.monotonic() > deadline:
            logs = "\n".join(w.log()[-3000:] for w in fleet.workers)
            raise AssertionError(f"{path} was not written within {timeout_s} s:\n{logs}")
        time.sleep(0.2)


def test_report_of_a_finished_job_in_a_browser(
    settings: Settings,
    fleet: Fleet,
    tmp_path: Path,
    job_store: JobStore,
    media_images: list[Path],
    page,
) -> None:
    src = open_storage(str(tmp_path / "in"))
    keys = upload(src, media_images[:5], prefix="photos/")
    src.write_bytes("photos/broken.jpg", b"this is not a JPEG")
    src.write_bytes("clips/parking.mp4", SHORT_CLIP.read_bytes())
    src.write_bytes("clips/empty.mp4", b"")
    fleet.start("w1")
    out = tmp_path / "out"
    done = submit(settings, create_app(settings), src.uri, str(out), "yolox-nano")
    record = wait_for_job(job_store, done.job_id or "")
    assert (record.done, record.failed) == (6, 2)

    report = out / report_key("report.html")
    wait_for_file(report, fleet)  # written by the worker that completed the job, just after
    size = report.stat().st_size
    print(f"report: {report} ({size / 1e6:.2f} MB)")
    html = report.read_text()
    assert "http://" not in html.replace("http://www.w3.org/", "").replace(
        "http://pygal.org", ""
    ).replace("http://github.com/Kozea/pygal", "")
    assert "https://" not in html

    page.goto(report.as_uri())
    assert page.title() == f"framefleet job {record.job_id}"
    totals = page.locator("#totals").inner_text()
    assert "ITEMS\n8" in totals.upper()
    assert "FAILED\n2" in totals.upper()

    # Charts: SVGs laid out with a real size and one bar per class.
    for chart in ("#classes svg", "#throughput svg"):
        box = page.locator(chart).bounding_box()
        assert box is not None, chart
        assert box["width"] > 300, (chart, box)
        assert box["height"] > 100, (chart, box)
    bars = page.locator("#classes svg .bar rect, #classes svg rect.rect").count()
    assert bars >= len(record.classes), (bars, record.classes)
    assert "person" in page.locator("#classes").inner_text()

    # Gallery: every thumbnail decoded by the browser.
    images = page.locator("#gallery img")
    assert images.count() == len(keys)
    widths = images.evaluate_all("(imgs) => imgs.map(i => i.complete && i.naturalWidth)")
    assert all(w and w > 100 for w in widths), widths
    assert "photos/" in page.locator("#gallery figcaption").first.inner_text()

    # Failures: both items with their reasons.
    rows = page.locator("#failures tbody tr")
    assert rows.count() == 2
    failures = page.locator("#failures").inner_text()
    assert "photos/broken.jpg" in failures
    assert "ImageDecodeError" in failures
    assert "clips/empty.mp4" in failures
    assert "VideoOpenError" in failures

    # The annotated video: loads and reports its duration where the codec is one browsers play;
    # otherwise the page says so instead of showing a black box.
    video = page.locator("#videos video")
    assert video.count() == 1
    state = video.evaluate(
        """(v) => new Promise((resolve) => {
            const done = () => resolve({duration: v.duration, error: v.error && v.error.code});
            if (v.readyState >= 1 || v.error) return done();
            v.addEventListener('loadedmetadata', done); v.addEventListener('error', done);
            setTimeout(done, 15000);
        })"""
    )
    annotated = out / annotated_key("clips/parking.mp4", video=True)
    if browser_plays(annotated):
        assert state["error"] is None, state
        document = read_document((out / result_key("clips/parking.mp4")).read_bytes())
        assert isinstance(document, VideoDocument)
        assert math.isclose(state["duration"], document.frames / document.fps, rel_tol=0.1), state
        video.evaluate("(v) => v.play()")
        page.wait_for_function("document.querySelector('#videos video').currentTime > 0")
    else:
        assert state["error"] is not None, state
        assert page.locator("#videos .video-error").is_visible()
    page.locator("#videos video").scroll_into_view_if_needed()
    screenshot(page, "report")


def test_report_command_rewrites_the_page(
    settings: Settings, fleet: Fleet, tmp_path: Path, job_store: JobStore, media_images: list[Path]
) -> None:
    src = open_storage(str(tmp_path / "in"))
    upload(src, media_images[:2])
    fleet.start("w1")
    out = tmp_path / "out"
    done = submit(settings, create_app(settings), src.uri, str(out), "yolox-nano")
    wait_for_job(job_store, done.job_id or "")
    page_file = out / report_key("report.html")
    wait_for_file(page_file, fleet)
    page_file.unlink()
    result = run_cli(settings, "report", done.job_id or "")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == page_file.as_uri()
    assert page_file.is_file()
    elsewhere = tmp_path / "copy.html"
    result = run_cli(settings, "report", done.job_id or "", "--out", str(elsewhere))
    assert result.returncode == 0, result.stderr
    assert "Detections per class" in elsewhere.read_text()
    missing = run_cli(settings, "report", "no-such-job")
    assert missing.returncode == 3
    assert "no job 'no-such-job'" in missing.stderr
