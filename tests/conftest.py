"""Fixtures with real parts: a redis-server and a SeaweedFS S3 server started by the suite on free
loopback ports, and `framefleet worker` processes. No eager mode, no mocked network.

A missing ``redis-server`` or ``weed`` skips locally and fails in CI (CI=true).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from browser import browser, page  # noqa: F401  (fixtures: headless Chromium, one per session)
from fleet import Fleet
from helpers import MEDIA_DIR, MODEL_DIR, missing_tool
from seaweed import s3_root, s3_server  # noqa: F401  (a real SeaweedFS S3 server; a prefix on it)

from framefleet.core.settings import Settings
from framefleet.services.redis import INSTALL_HINT, RedisServer
from framefleet.state.jobs import JobStore


@pytest.fixture(autouse=True)
def _clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """No FRAMEFLEET_* setting of the developer's shell leaks into a test."""
    for key in list(os.environ):
        if key.startswith("FRAMEFLEET_"):
            monkeypatch.delenv(key)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real redis-server of the suite's own, on a free port."""
    if shutil.which("redis-server") is None:
        missing_tool(f"redis-server not found on PATH; {INSTALL_HINT}")
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()
    print(f"\n--- redis-server log (tail) ---\n{server.log_tail(10)}")


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    """The suite's Redis, flushed before and after each test."""
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    yield redis_server.url
    client.flushall()
    client.close()


@pytest.fixture
def job_store(redis_url: str) -> JobStore:
    return JobStore.from_url(redis_url)


@pytest.fixture
def settings(redis_url: str) -> Settings:
    """Settings pointing at the suite's Redis and the shared models; quick retries."""
    return Settings(
        redis_url=redis_url,
        model_dir=MODEL_DIR,
        concurrency=1,
        batch_size=4,
        retry_backoff_s=0.2,
        max_retries=2,
        cv_threads=1,
    )


@pytest.fixture
def fleet(settings: Settings, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Fleet]:
    """Real worker processes; their logs are printed when the test fails."""
    fleet = Fleet(settings, tmp_path)
    yield fleet
    fleet.stop()
    report = getattr(request.node, "rep_call", None)
    if report is None or report.failed:
        for worker in fleet.workers:
            print(f"\n--- worker {worker.name} log ---\n{worker.log()[-6000:]}")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture
def media_images() -> list[Path]:
    """The shared sample photos."""
    return sorted(MEDIA_DIR.joinpath("images").iterdir())


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The fault tests' figures: seconds from each fault to the job's completion."""
    from faults import FIGURES

    if not FIGURES:
        return
    terminalreporter.section("faults survived (seconds from the last fault to job completion)")
    for f in FIGURES:
        terminalreporter.write_line(
            f"{f.test:<36} {f.injected:>3} x {f.fault:<16} items {f.items:>4} "
            f"done {f.done:>4} failed {f.failed:>2}  finished {f.seconds_to_finish:>6.1f} s after"
        )
