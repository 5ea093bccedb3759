"""Security properties of issue 7 with real parts: a pickled Celery message is refused and never
executed; writes stay inside the output root through a real worker; Redis with a password and TLS
(``rediss://``) runs a real job; and neither the S3 secret key, the Redis password nor a presigned
URL shows up in logs, results, the job state or the task arguments Flower displays."""

from __future__ import annotations

import json
import os
import secrets
import threading
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery
from fleet import Fleet, wait_for_job
from helpers import IMAGES_DIR
from test_e2e import run_cli
from tlscerts import make_tls_files

from framefleet.core.settings import Settings
from framefleet.core.storage import open_storage
from framefleet.queue import TASK_IMAGE_BATCH, create_app, queue_name
from framefleet.services.redis import RedisServer
from framefleet.state.jobs import JobStore
from producer.submit import submit

pytestmark = pytest.mark.integration

DOG = IMAGES_DIR / "darknet_dog.jpg"


class RunsCommandWhenUnpickled:
    """A payload that runs a shell command as soon as anything unpickles it."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return os.system, (self.command,)


def send_pickled_task(redis_url: str, payload: object) -> None:
    """A real pickle-serialised Celery task message, as a hostile client would enqueue it."""
    evil = Celery("attacker", broker=redis_url, set_as_current=False)
    evil.conf.update(task_serializer="pickle", accept_content=["pickle"])
    evil.send_task(
        TASK_IMAGE_BATCH, args=[payload], queue=queue_name("yolox-nano"), serializer="pickle"
    )


def test_pickled_message_is_refused_and_writes_stay_inside_the_output(
    settings: Settings, fleet: Fleet, tmp_path: Path, job_store: JobStore
) -> None:
    marker = tmp_path / "pwned"
    in_dir, out_dir, outside = tmp_path / "in", tmp_path / "out", tmp_path / "outside"
    (in_dir / "photos").mkdir(parents=True)
    out_dir.mkdir()
    outside.mkdir()
    for key in ("ok.jpg", "photos/dog.jpg"):
        (in_dir / key).write_bytes(DOG.read_bytes())
    # The output folder's "photos" leads elsewhere: the mirrored write must not follow it.
    (out_dir / "photos").symlink_to(outside, target_is_directory=True)
    worker = fleet.start("w1")
    app = create_app(settings)

    send_pickled_task(settings.redis_url, RunsCommandWhenUnpickled(f"touch {marker}"))
    app.send_task(  # JSON, but not a job: dropped with the reason
        TASK_IMAGE_BATCH,
        args=[{"v": 1, "kind": "image_batch", "items": "not-a-list"}],
        queue=queue_name("yolox-nano"),
    )
    job = submit(settings, app, str(in_dir), str(out_dir), "yolox-nano")
    record = wait_for_job(job_store, job.job_id or "", timeout_s=120)

    assert not marker.exists(), "the pickled payload was executed"
    log = worker.log()
    assert "Refusing to deserialize untrusted content of type pickle" in log
    assert "dropped malformed image_batch message" in log
    assert worker.process.poll() is None
    assert redis.Redis.from_url(settings.redis_url).llen(queue_name("yolox-nano")) == 0

    assert (record.done, record.failed) == (1, 1)
    (item, reason), *_ = job_store.failures(record.job_id)
    assert item == "photos/dog.jpg"
    assert reason["error"] == "StorageError"
    assert "photos/dog.jpg" in reason["message"]
    assert "outside the storage root" in reason["message"]
    assert list(outside.iterdir()) == []
    assert (out_dir / "ok.jpg.json").is_file()


def test_model_with_wrong_sha256_stops_the_worker_before_loading(
    settings: Settings, tmp_path: Path
) -> None:
    models = tmp_path / "models.toml"
    models.write_text(
        '[models.tampered]\ntask = "detection"\nfamily = "yolox"\n'
        f'files.model = {{ path = "detection/yolox_nano_416.onnx", sha256 = "{"1" * 64}" }}\n'
        'labels = { path = "labels/coco80.names" }\n'
        'preprocess = { input_wh = [416, 416], resize = "letterbox" }\n'
    )
    result = run_cli(settings.with_(models_file=models), "worker", "--models", "tampered")
    assert result.returncode == 6, result.stderr  # EXIT_MODEL, before Celery starts
    assert "ChecksumMismatch" in result.stderr
    assert f"the registry expects {'1' * 64}" in result.stderr


class EventLog:
    """Celery task events, as Flower receives them (after its ``enable_events`` broadcast),
    captured in a thread."""

    def __init__(self, app: Celery) -> None:
        self.events: list[dict[str, Any]] = []
        self._connection = app.connection()
        self._receiver = app.events.Receiver(self._connection, handlers={"*": self.events.append})
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self._receiver.capture(limit=None, timeout=None, wakeup=False)

    def __enter__(self) -> EventLog:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._receiver.should_stop = True
        self._thread.join(timeout=10)
        self._connection.release()


def redis_dump(client: redis.Redis) -> str:
    """Every key and value of the database, as text."""
    read = {
        "string": lambda key: client.get(key),
        "hash": lambda key: client.hgetall(key),
        "list": lambda key: client.lrange(key, 0, -1),
        "set": lambda key: client.smembers(key),
        "zset": lambda key: client.zrange(key, 0, -1, withscores=True),
    }
    parts = []
    for key in client.scan_iter(count=1000):
        kind = client.type(key).decode()
        value = read[kind](key) if kind in read else b""
        parts.append(f"{key!r} {kind} {value!r}")
    return "\n".join(parts)


def test_tls_redis_with_password_runs_a_job_and_no_secret_leaks(
    settings: Settings, s3_server, tmp_path: Path
) -> None:
    password = "rp-" + secrets.token_hex(12)
    server = RedisServer(
        tmp_path / "redis", password=password, tls=make_tls_files(tmp_path / "certs")
    ).start()
    try:
        url = server.url
        assert url.startswith(f"rediss://:{password}@127.0.0.1:{server.port}/0?")
        with pytest.raises(redis.ConnectionError):  # no plain-text port
            redis.Redis(port=server.port, socket_connect_timeout=2).ping()
        with pytest.raises(redis.AuthenticationError):  # TLS, but the wrong password
            redis.Redis.from_url(url.replace(password, "wrong")).ping()
        run_job_and_grep_for_secrets(settings.with_(redis_url=url), s3_server, tmp_path, password)
    finally:
        server.stop()


def run_job_and_grep_for_secrets(
    settings: Settings, s3_server: Any, tmp_path: Path, password: str
) -> None:
    s3_server.create_bucket("secure-in")
    s3_server.create_bucket("secure-out")
    src, dst = open_storage("s3://secure-in/job/"), open_storage("s3://secure-out/run/")
    src.write_bytes("a dog.jpg", DOG.read_bytes())
    src.write_bytes("ünï/dog.jpg", DOG.read_bytes())
    src.write_bytes("broken.jpg", b"<html>403</html>")
    fleet = Fleet(settings, tmp_path, extra_env=s3_server.env())
    try:
        worker = fleet.start("tls")
        app = create_app(settings)
        app.control.enable_events()  # what Flower broadcasts while it watches
        with EventLog(app) as events:
            result = run_cli(
                settings, "submit", src.uri, "--out", dst.uri, "--wait", env=s3_server.env()
            )
            assert result.returncode == 1, result.stderr  # done, with one failed item
            job_id = result.stdout.splitlines()[0].strip()
            status = run_cli(settings, "status", job_id, "--json", env=s3_server.env())
        client = redis.Redis.from_url(settings.redis_url)
        state = redis_dump(client)
        client.close()
        outputs = {obj.key: dst.read_bytes(obj.key).decode("latin-1") for obj in dst.list()}
    finally:
        fleet.stop()

    record = json.loads(status.stdout)
    assert (record["status"], record["done"], record["failed"]) == ("done", 2, 1)
    task_args = [repr(e.get("args")) for e in events.events if e.get("type") == "task-received"]
    # Positive controls: what is grepped below really holds the job's traces.
    assert job_id in state
    kinds = [e["type"] for e in events.events]
    assert any(job_id in args for args in task_args), kinds  # the task arguments Flower shows
    assert "ünï/dog.jpg.json" in outputs
    assert "_framefleet/failures.jsonl" in outputs
    assert "rediss://:**@" in worker.log()  # Celery's banner, masked

    haystacks = {
        "worker log": worker.log(),
        "submit output": result.stdout + result.stderr,
        "status output": status.stdout + status.stderr,
        "job state and queues in Redis": state,
        "task events (what Flower shows)": "\n".join(repr(e) for e in events.events),
        **{f"output {key}": text for key, text in outputs.items()},
    }
    for needle in (password, s3_server.secret_key, "X-Amz-Signature", "X-Amz-Credential"):
        for where, text in haystacks.items():
            assert needle not in text, f"{needle!r} found in the {where}"


def test_redis_password_is_masked_in_errors(settings: Settings) -> None:
    url = "redis://:hunter2-secret@127.0.0.1:1/0"
    result = run_cli(settings.with_(redis_url=url), "jobs")
    assert result.returncode == 5
    assert "127.0.0.1:1" in result.stderr
    assert "hunter2-secret" not in result.stderr
    bad_scheme = run_cli(settings.with_(redis_url="http://:hunter2-secret@h/0"), "jobs")
    assert bad_scheme.returncode == 3
    assert "http://:**@h/0" in bad_scheme.stderr
    assert "hunter2-secret" not in bad_scheme.stderr
