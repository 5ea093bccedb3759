"""Faults of the services, with real processes: Redis (AOF on) restarted mid-job, the SeaweedFS S3
server stopped and restarted mid-job, and S3 gone for good. Each test runs its own server, so the
suite's shared Redis and S3 are never touched. Figures are printed as FAULT FIGURE lines."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from faults import assert_exactly_once, freeze_node_holding, record_figure, thaw
from fleet import REPO, Fleet, cli, run_cli, wait_for_job
from test_faults import LEASE_TTL_S, make_input

from framefleet.core.errors import StorageError
from framefleet.core.jobrecord import JobStatus
from framefleet.core.settings import Settings
from framefleet.core.storage import open_storage
from framefleet.core.storage.s3 import S3Storage
from framefleet.services.redis import RedisServer
from framefleet.services.seaweed import SeaweedServer
from framefleet.state.jobs import JobStore
from framefleet.state.leases import LeaseStore

pytestmark = pytest.mark.integration


class Cli:
    """A `framefleet` command running in the background, its output in files."""

    def __init__(self, fleet: Fleet, name: str, *args: str) -> None:
        self.out = fleet.tmp / f"{name}.out"
        self.err = fleet.tmp / f"{name}.err"
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.process = subprocess.Popen(
                cli(*args),
                env=fleet.env(),
                cwd=REPO,
                stdout=out,
                stderr=err,
            )

    def first_line(self, timeout_s: float = 60) -> str:
        deadline = time.monotonic() + timeout_s
        while not self.out.read_text().strip():
            assert self.process.poll() is None, self.err.read_text()
            assert time.monotonic() < deadline, self.err.read_text()
            time.sleep(0.05)
        return self.out.read_text().splitlines()[0].strip()

    def wait(self, timeout_s: float = 180) -> int:
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise AssertionError(
                f"still running after {timeout_s} s:\n{self.err.read_text()}"
            ) from None

    def stderr(self) -> str:
        return self.err.read_text(errors="replace")


def wait_progress(store: JobStore, job_id: str, processed: int) -> None:
    wait_for_job(store, job_id, timeout_s=120, until=lambda r: r.processed >= processed)


def test_redis_restarted_mid_job(
    settings: Settings, fleet: Fleet, tmp_path: Path, media_images: list[Path]
) -> None:
    # AOF on, as deploy/ configures it; shut down and started again on the same port 5 s later.
    server = RedisServer(tmp_path / "redis", persist=True).start()
    try:
        settings = settings.with_(redis_url=server.url, batch_size=2, lease_ttl_s=LEASE_TTL_S)
        fleet.settings = settings
        src, keys = make_input(tmp_path / "in", media_images, copies=2)
        out = str(tmp_path / "out")
        worker = fleet.start("r", "--concurrency", "2")
        waiting = Cli(fleet, "submit", "submit", src.uri, "--out", out, "--wait")
        job_id = waiting.first_line()
        watching = Cli(fleet, "watch", "status", job_id, "--watch")
        store = JobStore.from_url(server.url, reconnect_s=60)
        wait_progress(store, job_id, 2)
        # Frozen while it holds a lease, the worker cannot finish the job before the outage; it
        # is thawed into the outage, so it rides it out like the CLIs.
        freeze_node_holding(LeaseStore(store.conn), worker, lambda item: True)
        server.stop()
        fault_at = time.time()
        thaw(worker)
        time.sleep(5)
        server.start()
        assert waiting.wait() == 0, waiting.stderr()
        assert watching.wait() == 0, watching.stderr()
        record = store.get(job_id)
        assert (record.status, record.failed) == (JobStatus.DONE, 0), record
        assert_exactly_once(store, record, open_storage(out), keys)
        figure = record_figure(
            "Redis restarted (AOF), down 5 s", "redis restart", 1, record, fault_at
        )
        for cli in (waiting, watching):
            assert "unreachable" in cli.stderr()
            assert "reconnecting in" in cli.stderr()
        assert figure.seconds_to_finish < 120
        assert fleet.workers[0].process.poll() is None  # the worker rode it out
    finally:
        server.stop()


class S3Job:
    """A SeaweedFS of the test's own with 30 images under s3://photos/, a worker node on it, and
    a job submitted through the CLI to s3://results/run/. `outage` stops the server while the
    worker holds a lease, so the job cannot have ended before it, however fast the machine."""

    def __init__(self, tmp_path: Path, fleet: Fleet, images: list[Path], name: str) -> None:
        self.server = SeaweedServer(tmp_path / "seaweed").start()
        try:
            self._setup(fleet, images, name)
        except BaseException:
            self.server.stop()
            raise

    def _setup(self, fleet: Fleet, images: list[Path], name: str) -> None:
        fleet.extra_env = self.server.env()
        self.server.create_bucket("photos")
        self.server.create_bucket("results")
        self.dst = S3Storage("s3://results/run/", client=self.server.client())
        src = S3Storage("s3://photos/", client=self.server.client())
        self.keys: list[str] = []
        for n in range(2):
            for path in images:
                src.write_bytes(f"set{n}/{path.name}", path.read_bytes())
                self.keys.append(f"set{n}/{path.name}")
        self.worker = fleet.start(name, "--concurrency", "2")
        self.submitted = Cli(
            fleet, "submit", "submit", "s3://photos/", "--out", "s3://results/run/"
        )
        self.job_id = self.submitted.first_line()
        self.store = JobStore.from_url(fleet.settings.redis_url)

    def outage(self) -> float:
        """Stop the S3 server mid-job (the worker frozen meanwhile); the wall time it stopped."""
        wait_progress(self.store, self.job_id, 2)
        freeze_node_holding(LeaseStore(self.store.conn), self.worker, lambda item: True)
        self.server.stop()
        stopped_at = time.time()
        thaw(self.worker)
        return stopped_at


def wait_readable(dst: S3Storage, job_id: str, store: JobStore, timeout_s: float = 60) -> None:
    """A restarted SeaweedFS answers 500 until its volume server has registered again."""
    done = sorted(store.client.smembers(f"{store.prefix}:job:{job_id}:done"))
    deadline = time.monotonic() + timeout_s
    while done:
        try:
            dst.read_bytes(f"{done[0]}.json")
            return
        except StorageError:
            assert time.monotonic() < deadline, "restarted SeaweedFS never served reads"
            time.sleep(0.5)


def test_s3_stopped_and_restarted_mid_job(
    settings: Settings, fleet: Fleet, tmp_path: Path, media_images: list[Path]
) -> None:
    # Down 3 s, then a restart that takes seconds more on a loaded machine: the transient-retry
    # path (backoff 1, 2, 4, 8, 16 s) outlasts it; nothing fails.
    settings = settings.with_(batch_size=2, retry_backoff_s=1.0, max_retries=5)
    fleet.settings = settings
    job = S3Job(tmp_path, fleet, media_images, "s")
    server, dst, keys, job_id, store = job.server, job.dst, job.keys, job.job_id, job.store
    try:
        fault_at = job.outage()
        time.sleep(3)
        server.start(same_ports=True)
        record = wait_for_job(store, job_id, timeout_s=180)
        assert (record.status, record.failed) == (JobStatus.DONE, 0), dict(store.failures(job_id))
        assert_exactly_once(store, record, dst, keys)
        record_figure("SeaweedFS stopped, restarted 3 s later", "s3 restart", 1, record, fault_at)
        assert job.submitted.wait() == 0
    finally:
        server.stop()


def test_node_killed_while_it_holds_a_delayed_retry(
    settings: Settings, fleet: Fleet, tmp_path: Path, media_images: list[Path]
) -> None:
    # One batch whose reads fail transiently (S3 down): its retry is sent with a countdown and
    # waits in node a's timer, unacknowledged. Node a is SIGKILLed during the countdown. The
    # lease went to the retry message (it was not dropped), so once it expires node b's sweeper
    # sends the retry: the job completes in seconds, not after Celery's visibility timeout.
    settings = settings.with_(
        batch_size=2, lease_ttl_s=LEASE_TTL_S, retry_backoff_s=3.0, max_retries=3
    )
    fleet.settings = settings
    server = SeaweedServer(tmp_path / "seaweed").start()
    try:
        fleet.extra_env = server.env()
        server.create_bucket("photos")
        server.create_bucket("results")
        src = S3Storage("s3://photos/", client=server.client())
        keys = [path.name for path in media_images[:2]]
        for path in media_images[:2]:
            src.write_bytes(path.name, path.read_bytes())
        submitted = Cli(fleet, "submit", "submit", "s3://photos/", "--out", "s3://results/run/")
        job_id = submitted.first_line()
        assert submitted.wait() == 0, submitted.stderr()
        server.stop()  # before any worker runs: the first attempt fails transiently
        node_a = fleet.start("a")
        store = JobStore.from_url(settings.redis_url)
        leases = LeaseStore(store.conn)
        deadline = time.monotonic() + 120
        # The lease is handed to the retry before the retry is published, and node a fetches it
        # a moment later: killed in between, the retry would still be in the queue and node b
        # would simply take it from there. Wait until node a holds it (its second "received").
        while not (
            any(holder == "" for _, holder, _ in leases.held())
            and node_a.log().count("] received") >= 2
        ):
            assert time.monotonic() < deadline, node_a.log()[-3000:]
            time.sleep(0.02)
        node_a.kill()
        fault_at = time.time()
        assert "retrying 2 item(s)" in node_a.log()
        server.start(same_ports=True)
        node_b = fleet.start("b")
        record = wait_for_job(store, job_id, timeout_s=120)
        assert (record.status, record.failed) == (JobStatus.DONE, 0), dict(store.failures(job_id))
        dst = S3Storage("s3://results/run/", client=server.client())
        assert_exactly_once(store, record, dst, keys)
        figure = record_figure(
            "node SIGKILLed holding a delayed retry", "node SIGKILL", 1, record, fault_at
        )
        assert "sending its message again" in node_b.log()
        assert figure.seconds_to_finish < 60
    finally:
        server.stop()


def test_a_read_that_hangs_is_failed_at_the_time_limit(
    settings: Settings, fleet: Fleet, tmp_path: Path, media_images: list[Path]
) -> None:
    # The S3 endpoint hangs (SIGSTOP: TCP connects succeed, no answer ever comes) before the
    # worker starts, so the first item's read blocks until the task's soft time limit (10 s of
    # a 40 s limit; boto3's own read timeout is 60 s). That item is failed with the reason and
    # the job goes on: the endpoint is thawed and the other items are done.
    settings = settings.with_(batch_size=1, task_time_limit_s=40, lease_ttl_s=LEASE_TTL_S)
    fleet.settings = settings
    server = SeaweedServer(tmp_path / "seaweed").start()
    try:
        fleet.extra_env = server.env()
        server.create_bucket("photos")
        src = S3Storage("s3://photos/", client=server.client())
        keys = [path.name for path in media_images[:3]]
        for path in media_images[:3]:
            src.write_bytes(path.name, path.read_bytes())
        out = tmp_path / "out"
        submitted = Cli(fleet, "submit", "submit", "s3://photos/", "--out", str(out))
        job_id = submitted.first_line()
        assert submitted.wait() == 0, submitted.stderr()
        server.pause()
        fault_at = time.time()
        fleet.start("h")
        store = JobStore.from_url(settings.redis_url)
        wait_for_job(store, job_id, timeout_s=120, until=lambda r: r.failed >= 1)
        hung_s = time.time() - fault_at
        server.resume()
        record = wait_for_job(store, job_id, timeout_s=120)
        assert (record.status, record.done, record.failed) == (JobStatus.DONE, 2, 1), record
        ((item, reason),) = store.failures(job_id)
        assert reason["error"] == "SoftTimeLimitExceeded", reason
        assert "soft time limit" in reason["message"], reason
        assert item in reason["message"], reason
        assert "FRAMEFLEET_TASK_TIME_LIMIT" in reason["message"]
        assert hung_s >= 10  # it really hung until the limit
        assert_exactly_once(store, record, open_storage(str(out)), keys)
        record_figure("S3 read hanging (endpoint frozen)", "hung read", 1, record, fault_at)
    finally:
        server.stop()


def test_s3_gone_for_good(
    settings: Settings, fleet: Fleet, tmp_path: Path, media_images: list[Path]
) -> None:
    # Items fail with a clear reason after the retries; the job ends, partly failed; nothing hangs.
    settings = settings.with_(batch_size=2, retry_backoff_s=0.2, max_retries=2)
    fleet.settings = settings
    job = S3Job(tmp_path, fleet, media_images, "g")
    server, dst, keys, job_id, store = job.server, job.dst, job.keys, job.job_id, job.store
    try:
        fault_at = job.outage()
        record = wait_for_job(store, job_id, timeout_s=180)
        assert record.status is JobStatus.DONE
        assert record.failed > 0
        for item, reason in store.failures(job_id):
            assert reason["error"] in ("StorageUnavailable", "TransientStorageError"), reason
            message = reason["message"]
            assert "cannot connect to the S3 endpoint" in message or "try again later" in message
            assert item in reason["message"] or "s3://photos/" in reason["message"], reason
        record_figure("S3 gone for good", "s3 down", 1, record, fault_at)
        server.start(same_ports=True)  # only to check the outputs written before the outage
        wait_readable(dst, record.job_id, store)
        # The job ended with S3 down, so its results tables could not be compacted then; the
        # remedy the worker logs does it, filling the failures from the job state.
        again = run_cli(settings, "status", record.job_id, "--write-report", env=server.env())
        assert again.returncode == 0, again.stderr
        assert_exactly_once(store, record, dst, keys)
        assert job.submitted.wait() == 0
    finally:
        server.stop()


def test_worker_waits_for_redis_at_start_then_exits_5(settings: Settings, tmp_path: Path) -> None:
    # Nothing listens on this port: one line per retry, no traceback, exit 5 after the bound.
    dead = settings.with_(redis_url="redis://127.0.0.1:1/0", redis_wait_s=3)
    started = time.monotonic()
    result = subprocess.run(
        cli("worker", "-n", "nobroker@%h"),
        env=Fleet(dead, tmp_path).env(),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 5, result.stderr
    assert time.monotonic() - started < 60
    retries = [line for line in result.stderr.splitlines() if "reconnecting in" in line]
    assert len(retries) >= 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "127.0.0.1:1" in result.stderr.splitlines()[-1]


def test_worker_exits_5_when_redis_stays_down(
    settings: Settings, fleet: Fleet, tmp_path: Path
) -> None:
    server = RedisServer(tmp_path / "redis").start()
    try:
        fleet.settings = settings.with_(redis_url=server.url, redis_wait_s=6, lease_ttl_s=3)
        worker = fleet.start("lonely")
        server.stop()
        code = worker.process.wait(timeout=120)
        assert code == 5, worker.log()[-3000:]
        assert "stopping the worker with exit code 5" in worker.log()
    finally:
        server.stop()
