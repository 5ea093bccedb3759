"""Faults with real processes, no mocks: worker processes and whole worker nodes SIGKILLed, a
poison image and a poison video segment that kill every process that runs them. Each test checks
that every input has exactly one outcome, outputs are whole, counts are exact, the job finishes,
and notes how many seconds after the fault it finished (printed at the end of the run as FAULT
FIGURE lines).

The long mode (50 pool children killed) is behind ``-m slow``.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest
from faults import (
    assert_exactly_once,
    freeze_node_holding,
    holders,
    kill,
    record_figure,
)
from fleet import Fleet, wait_for_job
from test_video import WALK, assert_each_sampled_frame_once, assert_whole_video, lines, put

from benchmarks.procstats import child_pids
from framefleet.core.jobrecord import JobRecord, JobStatus
from framefleet.core.messages import ImageBatch
from framefleet.core.sampling import Sampling
from framefleet.core.settings import Settings
from framefleet.core.storage import Storage, open_storage
from framefleet.queue import create_app, send_jobs
from framefleet.state.connection import Connection
from framefleet.state.jobs import JobStore
from framefleet.state.leases import LeaseStore
from producer.submit import submit

pytestmark = pytest.mark.integration

LEASE_TTL_S = 6.0
"""Short leases, so a dead node's work comes back within seconds in these tests."""


def make_input(root: Path, images: list[Path], copies: int) -> tuple[Storage, list[str]]:
    """``copies`` copies of the shared images under distinct prefixes."""
    src = open_storage(str(root))
    keys = []
    for n in range(copies):
        for path in images:
            key = f"set{n}/{path.name}"
            src.write_bytes(key, path.read_bytes())
            keys.append(key)
    return src, keys


class OpenJob:
    """A job whose listing the test holds open: it sends rounds of images when asked (the same
    messages, total and listing calls as the producer), and finishes listing when told. The job
    cannot end before the faults the test injects, however fast the machine; it takes as many
    items as the faults need, no more."""

    def __init__(self, settings: Settings, root: Path, images: list[Path]) -> None:
        self.settings = settings
        self.images = images
        self.store = JobStore.from_url(settings.redis_url)
        self.app = create_app(settings)
        self.src = open_storage(str(root / "in"))
        self.dst = open_storage(str(root / "out"))
        self.job_id = self.store.create(self.src.uri, self.dst.uri, "yolox-nano")
        self.keys: list[str] = []
        self.batches = 0

    def feed(self, count: int) -> None:
        """Write and send ``count`` more images."""
        new = []
        for n in range(len(self.keys), len(self.keys) + count):
            image = self.images[n % len(self.images)]
            key = f"r{n // len(self.images)}/{image.name}"
            self.src.write_bytes(key, image.read_bytes())
            new.append(key)
        size = self.settings.batch_size
        batches = [tuple(new[i : i + size]) for i in range(0, len(new), size)]
        jobs = [
            ImageBatch(self.job_id, self.batches + i, self.src.uri, self.dst.uri, "yolox-nano", b)
            for i, b in enumerate(batches)
        ]
        self.store.add_items(self.job_id, count, message_no=self.batches)
        send_jobs(self.app, jobs)
        self.keys += new
        self.batches += len(batches)

    def close(self) -> JobRecord:
        """Finish listing; wait for the job to end."""
        self.store.finish_listing(self.job_id)
        return wait_for_job(self.store, self.job_id, timeout_s=240)


def kill_busy_children(leases: LeaseStore, worker_pid: int, kills: int, job: OpenJob) -> float:
    """SIGKILL ``kills`` pool children of ``worker_pid``, each while it holds a lease (mid-task)
    at a random point of it, feeding the job whenever its work runs low; returns the wall time of
    the last kill."""
    killed: set[int] = set()
    rng = random.Random(7)
    deadline = time.monotonic() + 240
    job.feed(16)
    while len(killed) < kills:
        assert time.monotonic() < deadline, f"only {len(killed)} of {kills} children killed"
        record = job.store.get(job.job_id)
        if record.processed >= record.total - 2:
            job.feed(16)
        if not any(pid in set(child_pids(worker_pid)) - killed for pid, _ in holders(leases)):
            time.sleep(0.02)
            continue
        time.sleep(rng.uniform(0.0, 0.4))  # somewhere in the task: reading, inferring, writing
        busy = [pid for pid, _ in holders(leases) if pid in set(child_pids(worker_pid)) - killed]
        if busy and kill(pid := rng.choice(busy)):
            killed.add(pid)
    return time.time()


def run_child_kills(settings: Settings, fleet: Fleet, tmp_path: Path, images: list[Path],
                    kills: int) -> None:  # fmt: skip
    settings = settings.with_(batch_size=2, lease_ttl_s=LEASE_TTL_S)
    fleet.settings = settings
    worker = fleet.start("kids", "--concurrency", "2")
    job = OpenJob(settings, tmp_path, images)
    leases = LeaseStore(Connection.from_url(settings.redis_url))
    last = kill_busy_children(leases, worker.pid, kills, job)
    record = job.close()
    assert (record.status, record.failed) == (JobStatus.DONE, 0), record
    assert_exactly_once(job.store, record, job.dst, job.keys)
    record_figure("pool children SIGKILLed", "child SIGKILL", kills, record, last)
    assert worker.process.poll() is None  # the node itself lived on


def test_pool_children_killed_mid_task(
    settings: Settings, fleet: Fleet, tmp_path: Path, media_images: list[Path]
) -> None:
    run_child_kills(settings, fleet, tmp_path, media_images, kills=5)


@pytest.mark.slow
def test_fifty_pool_children_killed(
    settings: Settings, fleet: Fleet, tmp_path: Path, media_images: list[Path]
) -> None:
    run_child_kills(settings, fleet, tmp_path, media_images, kills=50)


def test_whole_worker_node_killed(
    settings: Settings, fleet: Fleet, tmp_path: Path, job_store: JobStore, media_images: list[Path]
) -> None:
    # As when a machine dies: the main process and its child at once. Its message stays
    # unacknowledged in Celery's Redis transport for the visibility timeout (an hour); the lease
    # expires in seconds and node b's sweeper sends the message again. Node a runs alone and is
    # frozen while it holds a lease, so the job cannot end before the fault on a fast machine.
    settings = settings.with_(batch_size=2, lease_ttl_s=LEASE_TTL_S)
    fleet.settings = settings
    src, keys = make_input(tmp_path / "in", media_images, copies=1)
    node_a = fleet.start("a")
    done = submit(settings, create_app(settings), src.uri, str(tmp_path / "out"), "yolox-nano")
    job_id = done.job_id or ""
    leases = LeaseStore(Connection.from_url(settings.redis_url))
    freeze_node_holding(leases, node_a, lambda item: True)
    node_b = fleet.start("b")
    node_a.kill()  # SIGKILL to the whole process group
    fault_at = time.time()
    record = wait_for_job(job_store, job_id, timeout_s=180)
    assert (record.status, record.failed) == (JobStatus.DONE, 0), record
    assert_exactly_once(job_store, record, open_storage(str(tmp_path / "out")), keys)
    figure = record_figure("whole worker node SIGKILLed", "node SIGKILL", 1, record, fault_at)
    assert "sending its message again" in node_b.log()
    assert figure.seconds_to_finish < 60  # within about a minute, not the visibility timeout


def test_whole_node_killed_while_it_holds_a_video_segment(
    settings: Settings, fleet: Fleet, tmp_path: Path, job_store: JobStore
) -> None:
    # Node a alone takes the video; it is frozen (SIGSTOP) while it holds a segment, so the job
    # cannot end before the fault whatever the machine's speed; node b starts, then a is
    # SIGKILLed. The segment's lease expires and b's sweeper sends it again: the video completes
    # in seconds (not after the hour of Celery's visibility timeout), each frame once.
    settings = settings.with_(lease_ttl_s=LEASE_TTL_S, segment_seconds=1.0)
    fleet.settings = settings
    src = open_storage(str(tmp_path / "in"))
    key = put(src, WALK, "walk/a.mp4")  # 100 frames at 10 fps: 10 segments
    node_a = fleet.start("a")
    done = submit(settings, create_app(settings), src.uri, str(tmp_path / "out"), "yolox-nano")
    job_id = done.job_id or ""
    leases = LeaseStore(Connection.from_url(settings.redis_url))
    segment = freeze_node_holding(leases, node_a, lambda item: item.startswith(f"{key}#"))
    node_b = fleet.start("b")
    node_a.kill()
    fault_at = time.time()
    record = wait_for_job(job_store, job_id, timeout_s=120)
    assert (record.status, record.total, record.done, record.failed) == (JobStatus.DONE, 1, 1, 0)
    (video,) = record.videos
    assert (video.segments_done, video.segments_total, video.state) == (10, 10, "merged")
    out = open_storage(str(tmp_path / "out"))
    assert_each_sampled_frame_once(lines(out, key), 100, Sampling(), 10.0)
    assert_whole_video(out, key, tmp_path, 100, 10.0, (768, 432))
    assert f"on item {segment}" in node_b.log()  # the sweeper resent the frozen node's segment
    figure = record_figure("node SIGKILLed holding a video segment", "node SIGKILL", 1, record,
                           fault_at)  # fmt: skip
    assert figure.seconds_to_finish < 60


def test_poison_item_that_kills_its_process(
    settings: Settings, fleet: Fleet, tmp_path: Path, job_store: JobStore, media_images: list[Path]
) -> None:
    # Every process that starts on poison.jpg is SIGKILLed, as a crash in native code would do.
    # It is retried max_crashes times, then failed with a reason; the job never loops or blocks.
    settings = settings.with_(batch_size=1, lease_ttl_s=LEASE_TTL_S, max_crashes=2)
    fleet.settings = settings
    src, keys = make_input(tmp_path / "in", media_images[:6], copies=1)
    src.write_bytes("poison.jpg", media_images[0].read_bytes())
    keys.append("poison.jpg")
    worker = fleet.start("p", "--concurrency", "2")
    done = submit(settings, create_app(settings), src.uri, str(tmp_path / "out"), "yolox-nano")
    job_id = done.job_id or ""
    leases = LeaseStore(Connection.from_url(settings.redis_url))
    killed: set[int] = set()  # a killed process lingers as a zombie until Celery reaps it
    last = time.time()
    deadline = time.monotonic() + 180
    while not job_store.get(job_id).finished:
        assert time.monotonic() < deadline, job_store.get(job_id)
        for pid, item in holders(leases):
            if item == "poison.jpg" and pid not in killed and kill(pid):
                killed.add(pid)
                last = time.time()
        time.sleep(0.02)
    kills = len(killed)
    record = wait_for_job(job_store, job_id)
    assert_exactly_once(job_store, record, open_storage(str(tmp_path / "out")), keys)
    assert (record.done, record.failed) == (len(keys) - 1, 1)
    reason = dict(job_store.failures(job_id))["poison.jpg"]
    assert reason["error"] == "WorkerCrashed"
    assert "died or hung past the time limit 2 times" in reason["message"]
    assert kills == settings.max_crashes
    record_figure("poison item killing its process", "poison SIGKILL", kills, record, last)
    assert worker.process.poll() is None


def test_poison_segment_that_kills_its_process(
    settings: Settings, fleet: Fleet, tmp_path: Path, job_store: JobStore, media_images: list[Path]
) -> None:
    # Every process that starts on segment 3 of a video is SIGKILLed. After max_crashes starts
    # the segment is failed, which fails its video with a reason naming the segment; the images
    # of the same job are done, the finished segments' parts are swept, the worker lives on.
    settings = settings.with_(batch_size=1, lease_ttl_s=LEASE_TTL_S, max_crashes=2,
                              segment_seconds=1.0)  # fmt: skip
    fleet.settings = settings
    src, keys = make_input(tmp_path / "in", media_images[:2], copies=1)
    video = put(src, WALK, "walk/a.mp4")  # 100 frames at 10 fps: 10 segments
    poison = f"{video}#3"
    worker = fleet.start("p", "--concurrency", "2")
    done = submit(settings, create_app(settings), src.uri, str(tmp_path / "out"), "yolox-nano")
    job_id = done.job_id or ""
    leases = LeaseStore(Connection.from_url(settings.redis_url))
    killed: set[int] = set()
    last = time.time()
    deadline = time.monotonic() + 180
    while not job_store.get(job_id).finished:
        assert time.monotonic() < deadline, job_store.get(job_id)
        for pid, item in holders(leases):
            if item == poison and pid not in killed and kill(pid):
                killed.add(pid)
                last = time.time()
        time.sleep(0.02)
    record = wait_for_job(job_store, job_id)
    assert (record.status, record.total, record.done, record.failed) == (JobStatus.DONE, 3, 2, 1)
    reason = dict(job_store.failures(job_id))[video]
    assert reason["error"] == "WorkerCrashed", reason
    assert reason["message"].startswith("segment 3 (frames 30-40): "), reason
    assert "died or hung past the time limit 2 times" in reason["message"]
    assert len(killed) == settings.max_crashes
    (state,) = record.videos
    assert state.state == "failed"
    out = open_storage(str(tmp_path / "out"))
    # Whoever completes the job sweeps the parts just after recording it; a segment still running
    # then deletes its own part when it sees its video failed. None may be left after that.
    deadline = time.monotonic() + 30
    while [obj.key for obj in out.list("_framefleet/parts/")]:
        assert time.monotonic() < deadline, [obj.key for obj in out.list("_framefleet/parts/")]
        time.sleep(0.1)
    listed = [obj.key for obj in out.list("")]
    assert not [k for k in listed if k.startswith(video)], listed  # no half-made outputs
    for key in keys:
        assert f"{key}.json" in listed, listed
    record_figure("poison video segment killing its process", "poison SIGKILL", len(killed),
                  record, last)  # fmt: skip
    assert worker.process.poll() is None
