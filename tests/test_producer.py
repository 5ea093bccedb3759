"""Producer planning, in-process: which keys become which messages."""

from __future__ import annotations

import json
import sys
import threading
import uuid
from pathlib import Path

import pytest
import redis

from framefleet.core.inputs import classify, input_keys
from framefleet.core.jobspec import JobSpec
from framefleet.core.messages import ImageBatch, VideoPlan
from framefleet.core.outputs import holds_nothing
from framefleet.core.settings import Settings
from framefleet.core.storage import LocalStorage, MemoryStorage
from framefleet.queue import create_app, queue_name, send_jobs
from framefleet.services.redis import RedisServer


@pytest.mark.parametrize(
    ("key", "kind"),
    [
        pytest.param("a/b.JPG", "image", id="upper-case-suffix"),
        pytest.param("clip.MOV", "video", id="video"),
        pytest.param("anim.gif", "video", id="gif-is-video"),
        pytest.param("notes.txt", "skip", id="not-media"),
        pytest.param("no_suffix", "skip", id="no-suffix"),
    ],
)
def test_classify(key: str, kind: str) -> None:
    assert classify(key) == kind


def test_images_batch_and_videos_go_alone() -> None:
    src, dst = MemoryStorage("mem://p-in/"), MemoryStorage("mem://p-out/")
    keys = ["1.jpg", "2.jpg", "v.mp4", "3.jpg", "4.png", "5.jpg", "x.txt"]
    spec = JobSpec(input_uri=src.uri, output_uri=dst.uri, model="yolox-nano", batch_size=2)
    planned = list(spec.messages("j", keys))
    assert [(type(m).__name__, m.items, n) for m, n in planned] == [
        ("ImageBatch", ("1.jpg", "2.jpg"), 2),
        ("VideoPlan", ("v.mp4",), 1),
        ("ImageBatch", ("3.jpg", "4.png"), 2),
        ("ImageBatch", ("5.jpg",), 1),
    ]
    assert [m.batch_no for m, _ in planned if isinstance(m, ImageBatch)] == [0, 1, 2]
    assert all(isinstance(m, (ImageBatch, VideoPlan)) for m, _ in planned)


def test_listing_is_lazy_and_skips_outputs_inside_the_input() -> None:
    name = uuid.uuid4().hex[:6]
    src = MemoryStorage(f"mem://{name}/photos/")
    for key in [
        "a.jpg",
        "b.jpg",
        "results/a.jpg",
        "results/a.jpg.json",
        "_framefleet/summary.json",
    ]:
        src.write_bytes(key, b"x")
    dst = MemoryStorage(f"mem://{name}/photos/results/")
    listing = input_keys(src, dst)
    assert not isinstance(listing, list)
    assert [o.key for o in listing] == ["a.jpg", "b.jpg"]


def test_holds_nothing_only_for_an_empty_or_missing_output(tmp_path: Path) -> None:
    name = uuid.uuid4().hex[:6]
    empty = MemoryStorage(f"mem://{name}/out/")
    assert holds_nothing(empty)
    empty.write_bytes("_framefleet/summary.json", b"{}")  # a report counts: something ran there
    assert not holds_nothing(empty)
    assert holds_nothing(LocalStorage(str(tmp_path / "not-yet")))  # created by the first write
    (tmp_path / "some" / "deep").mkdir(parents=True)
    assert holds_nothing(LocalStorage(str(tmp_path / "some")))  # folders alone hold no output
    (tmp_path / "some" / "deep" / "a.jpg.json").write_text("{}")
    assert not holds_nothing(LocalStorage(str(tmp_path / "some")))


def test_producer_never_imports_opencv() -> None:
    import subprocess

    code = "import producer.submit, producer.progress, framefleet.cli, sys; print('cv2' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_send_jobs_publishes_in_one_batch_and_rides_out_a_redis_restart(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis").start()
    try:
        settings = Settings(redis_url=server.url, redis_wait_s=20)
        app = create_app(settings)
        src, dst = MemoryStorage("mem://send-in/"), MemoryStorage("mem://send-out/")
        keys = [f"{i}.jpg" for i in range(10)]
        spec = JobSpec(input_uri=src.uri, output_uri=dst.uri, model="yolox-nano", batch_size=2)
        jobs = [m for m, _ in spec.messages("j", keys)]
        client = redis.Redis.from_url(server.url)
        send_jobs(app, jobs)
        queue = queue_name("yolox-nano")
        sent = [json.loads(raw)["headers"]["argsrepr"] for raw in client.lrange(queue, 0, -1)]
        assert len(set(sent)) == len(sent) == 5, sent
        server.stop()  # down while sending; back 1.5 s later on the same port
        again = threading.Timer(1.5, server.start)
        again.start()
        send_jobs(app, jobs)
        again.join()
        assert redis.Redis.from_url(server.url).llen(queue) >= len(jobs)  # an empty Redis again
    finally:
        server.stop()
