"""One contract test set run against every storage backend, plus what is backend-specific.

The S3 rows run against a real SeaweedFS started once per session (see seaweed.py).
"""

from __future__ import annotations

import errno
import os
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import botocore.exceptions  # type: ignore[import-untyped, unused-ignore]
import pytest
from botocore.stub import Stubber  # type: ignore[import-untyped, unused-ignore]
from seaweed import unique_root

from framefleet.core.errors import (
    BucketNotFound,
    ObjectNotFound,
    RetryableError,
    StorageError,
    StorageUnavailable,
)
from framefleet.core.settings import Settings
from framefleet.core.storage import (
    LocalStorage,
    MemoryStorage,
    Storage,
    TransientStorageError,
    join_uri,
    open_storage,
    relative_key,
    split_uri,
)
from framefleet.core.storage.local import TEMP_PREFIX
from framefleet.core.storage.memory import clear_memory_stores
from framefleet.core.storage.s3 import S3Storage, make_client, shared_client
from framefleet.services.ports import free_port
from framefleet.services.seaweed import SeaweedServer

DoesNotRaise = nullcontext

OBJECTS = {
    "top.jpg": b"1",
    "a/x.JPG": b"22",
    "b-c.png": b"333",
    "cats/001.jpg": b"4444",
    "cats/002.jpeg": b"55555",
    "cats/notes.txt": b"666666",
    "cats/sub/003.JPG": b"7777777",
    "dogs/001.png": b"88888888",
}


@pytest.fixture(scope="module")
def offline_client() -> Any:
    """An S3 client for a port nothing listens on, for stubbed responses; built once (~0.1 s)."""
    return make_client(
        endpoint_url="http://127.0.0.1:9",
        access_key_id="k",
        secret_access_key="s",
        region="us-east-1",
        max_attempts=2,
    )


@pytest.fixture
def s3_root(s3_server: SeaweedServer, request: pytest.FixtureRequest) -> str:
    """A fresh prefix in the suite's SeaweedFS test bucket (s3_server comes from conftest)."""
    return unique_root(request.node.name)


@pytest.fixture(autouse=True)
def _forget_memory_stores() -> Iterator[None]:
    yield
    clear_memory_stores()


@pytest.fixture(
    params=[
        pytest.param("local", id="local"),
        pytest.param("memory", id="memory"),
        pytest.param("s3", id="s3", marks=pytest.mark.integration),
    ]
)
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    """An empty storage of each backend; S3 lists 2 keys per page to exercise pagination."""
    if request.param == "local":
        return LocalStorage(tmp_path / "root")
    if request.param == "memory":
        return MemoryStorage(f"mem://{uuid.uuid4().hex}/")
    # The process's shared client, which the s3_server fixture aims at SeaweedFS via AWS_*.
    return S3Storage(request.getfixturevalue("s3_root"), page_size=2)


@pytest.fixture
def filled(storage: Storage) -> Storage:
    for key, data in OBJECTS.items():
        storage.write_bytes(key, data)
    return storage


# --- the contract, for every backend ------------------------------------------------------------


def test_roundtrip_binary_nested(storage: Storage) -> None:
    data = bytes(range(256)) * 1024
    storage.write_bytes("deep/er/still/blob.bin", data)
    assert storage.read_bytes("deep/er/still/blob.bin") == data


def test_overwrite_replaces_whole_object(storage: Storage) -> None:
    storage.write_bytes("k.json", b"first, longer content")
    storage.write_bytes("k.json", b"second")
    assert storage.read_bytes("k.json") == b"second"
    assert [(o.key, o.size) for o in storage.list()] == [("k.json", 6)]


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("cats/001.jpg", True),  # an object
        ("cats/404.jpg", False),  # a missing key
        ("cats", False),  # a "directory" prefix is not an object
        ("cats/sub", False),
    ],
)
def test_exists(filled: Storage, key: str, expected: bool) -> None:
    assert filled.exists(key) is expected


def test_missing_key_names_its_uri(storage: Storage) -> None:
    with pytest.raises(ObjectNotFound, match=storage.uri_for("no/such.jpg")):
        storage.read_bytes("no/such.jpg")


@pytest.mark.parametrize(
    ("prefix", "suffixes", "expected"),
    [
        ("", None, sorted(OBJECTS)),  # everything, recursive, in plain string order
        ("cats/", None, ["cats/001.jpg", "cats/002.jpeg", "cats/notes.txt", "cats/sub/003.JPG"]),
        ("cats/00", None, ["cats/001.jpg", "cats/002.jpeg"]),  # a partial name, S3-style
        ("cat", None, ["cats/001.jpg", "cats/002.jpeg", "cats/notes.txt", "cats/sub/003.JPG"]),
        ("", [".jpg"], ["a/x.JPG", "cats/001.jpg", "cats/sub/003.JPG", "top.jpg"]),  # any case
        ("", (".JPEG", ".PNG"), ["b-c.png", "cats/002.jpeg", "dogs/001.png"]),
        ("", ".png", ["b-c.png", "dogs/001.png"]),  # one bare suffix, not its letters
        ("cats/", [".txt"], ["cats/notes.txt"]),
        ("nope/", None, []),
        ("", [], []),  # no suffix allowed: nothing
    ],
)
def test_list(filled: Storage, prefix: str, suffixes: Any, expected: list[str]) -> None:
    found = list(filled.list(prefix, suffixes))
    assert [obj.key for obj in found] == expected
    assert all(obj.size == len(OBJECTS[obj.key]) for obj in found)


def test_list_tags_change_with_the_content_and_start_after_skips(storage: Storage) -> None:
    # What `submit --follow` relies on: a rewrite changes the tag (ETag, size:mtime_ns, checksum);
    # start_after lists only the keys after a cursor (S3: ListObjectsV2 StartAfter).
    storage.write_bytes("a.jpg", b"first")
    storage.write_bytes("b/c.jpg", b"other")
    before = {obj.key: obj.tag for obj in storage.list()}
    storage.write_bytes("a.jpg", b"second content")
    after = {obj.key: obj.tag for obj in storage.list()}
    assert before["a.jpg"]
    assert before["a.jpg"] != after["a.jpg"]
    assert before["b/c.jpg"] == after["b/c.jpg"]
    assert [obj.key for obj in storage.list(start_after="a.jpg")] == ["b/c.jpg"]
    assert [obj.key for obj in storage.list(start_after="b/c.jpg")] == []


def test_list_is_lazy(filled: Storage) -> None:
    listing = filled.list()
    assert isinstance(listing, Iterator)
    assert not isinstance(listing, list)
    assert next(listing).key == "a/x.JPG"


def test_list_order_is_plain_string_order(storage: Storage) -> None:
    keys = ["a/x.jpg", "a-b.png", "a.jpg", "a b.png", "a0.png"]  # '/' sorts after ' ', '-', '.'
    for key in keys:
        storage.write_bytes(key, b"x")
    listed = [obj.key for obj in storage.list()]
    if isinstance(storage, S3Storage):
        # Order is the server's: SeaweedFS 4.48 lists folder 'a/' where 'a' would sort (AWS S3
        # and MinIO use plain UTF-8 order). The contract for S3 is "each key exactly once".
        assert sorted(listed) == sorted(keys)
        assert listed[0] == "a/x.jpg", "SeaweedFS now sorts like AWS: tighten this test"
    else:
        assert listed == sorted(keys)


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("../escape.jpg", pytest.raises(StorageError, match=r"'\.\./escape\.jpg' escapes")),
        ("a/../../escape.jpg", pytest.raises(StorageError, match="escapes the storage root")),
        ("/etc/passwd", pytest.raises(StorageError, match="invalid key '/etc/passwd'")),
        ("", pytest.raises(StorageError, match="invalid key ''")),
        ("a//b.jpg", pytest.raises(StorageError, match="invalid key")),
        ("./a.jpg", pytest.raises(StorageError, match="invalid key")),
        ("a/", pytest.raises(StorageError, match="invalid key")),
        ("a..b/c.jpg", DoesNotRaise()),  # dots inside a name are fine
    ],
)
def test_keys_cannot_escape_the_root(
    storage: Storage, tmp_path: Path, key: str, expected: AbstractContextManager[Any]
) -> None:
    with expected:
        storage.write_bytes(key, b"x")
    with expected:
        storage.exists(key)
    with expected:
        storage.read_bytes(key)
    assert not (tmp_path / "escape.jpg").exists()


@pytest.mark.parametrize("prefix", ["../", "a/../../", "/abs/"])
def test_prefixes_cannot_escape_the_root(storage: Storage, prefix: str) -> None:
    with pytest.raises(StorageError, match="prefix"):
        storage.list(prefix)


def test_uri_helpers_address_the_same_objects(filled: Storage) -> None:
    uri = filled.uri_for("cats/sub/003.JPG")
    assert uri == filled.uri + "cats/sub/003.JPG" == join_uri(filled.uri, "cats/sub/003.JPG")
    assert relative_key(filled.uri, uri) == "cats/sub/003.JPG"
    parent, name = split_uri(uri)
    assert open_storage(parent).read_bytes(name) == OBJECTS["cats/sub/003.JPG"]


def test_open_storage_of_same_root_shares_objects(storage: Storage) -> None:
    storage.write_bytes("shared.txt", b"hello")
    again = open_storage(storage.uri)
    assert (type(again), again.uri) == (type(storage), storage.uri)
    assert again.read_bytes("shared.txt") == b"hello"


# --- open_storage and URI helpers ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "kind", "root"),
    [
        ("s3://bucket/in", S3Storage, "s3://bucket/in/"),
        ("s3://bucket", S3Storage, "s3://bucket/"),
        ("mem://name/p/q", MemoryStorage, "mem://name/p/q/"),
        ("file:///data/in/", LocalStorage, "file:///data/in/"),
        ("/data/in", LocalStorage, "file:///data/in/"),
        ("/data/my images", LocalStorage, "file:///data/my images/"),  # no percent-encoding
    ],
)
def test_open_storage_picks_backend_from_scheme(uri: str, kind: type, root: str) -> None:
    storage = open_storage(uri)
    assert (type(storage), storage.uri) == (kind, root)


def test_open_storage_resolves_relative_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert open_storage("out/run1").uri == f"file://{tmp_path}/out/run1/"


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("ftp://host/x", r"scheme 'ftp://' is not one of s3://, mem://, file://"),
        ("s3://", "has no bucket"),
        ("s3:///prefix", "has no bucket"),
        ("mem://", "no store name"),
        ("file://relative/dir", "absolute path"),
    ],
)
def test_open_storage_refuses_bad_uris(uri: str, message: str) -> None:
    with pytest.raises(StorageError, match=message):
        open_storage(uri)


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("s3://b/in/cats/001.jpg", DoesNotRaise(("s3://b/in/cats/", "001.jpg"))),
        ("/data/a.jpg", DoesNotRaise(("/data/", "a.jpg"))),
        ("a.jpg", DoesNotRaise(("./", "a.jpg"))),
        ("s3://b/in/", pytest.raises(StorageError, match="does not name an object")),
        ("s3://bucket", pytest.raises(StorageError, match="does not name an object")),
    ],
)
def test_split_uri(uri: str, expected: AbstractContextManager[Any]) -> None:
    with expected as parts:
        assert split_uri(uri) == parts


@pytest.mark.parametrize(
    ("root", "uri", "expected"),
    [
        ("s3://b/in", "s3://b/in/cats/1.jpg", DoesNotRaise("cats/1.jpg")),
        ("s3://b/in/", "s3://b/in/cats/1.jpg", DoesNotRaise("cats/1.jpg")),
        ("s3://b/in", "s3://b/inbox/1.jpg", pytest.raises(StorageError, match="not an object")),
        ("s3://b/in/", "s3://b/in/", pytest.raises(StorageError, match="not an object")),
        ("file:///x/", "file:///x/../y.jpg", pytest.raises(StorageError, match="escapes")),
    ],
)
def test_relative_key(root: str, uri: str, expected: AbstractContextManager[Any]) -> None:
    with expected as key:
        assert relative_key(root, uri) == key
        assert join_uri(root, key) == uri


# --- local ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("fail_in", ["fsync", "replace"])
def test_local_failed_write_keeps_old_file_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail_in: str
) -> None:
    storage = LocalStorage(tmp_path, durable=fail_in == "fsync")
    storage.write_bytes("cats/001.json", b"old")

    def disk_full(*args: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, fail_in, disk_full)
    with pytest.raises(StorageError, match="no space left"):
        storage.write_bytes("cats/001.json", b"new, never seen")
    monkeypatch.undo()
    assert storage.read_bytes("cats/001.json") == b"old"
    assert sorted(p.name for p in (tmp_path / "cats").iterdir()) == ["001.json"]


def test_local_write_over_a_folder_is_refused(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    storage.write_bytes("cats/001.jpg", b"x")
    with pytest.raises(StorageError, match=r"cannot write .*/cats") as caught:
        storage.write_bytes("cats", b"x")
    assert not isinstance(caught.value, ObjectNotFound)
    with pytest.raises(ObjectNotFound):
        storage.read_bytes("cats")


def test_local_reader_never_sees_a_partial_file(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    versions = (b"a" * 1_000_000, b"b" * 2_000_000)
    storage.write_bytes("big.bin", versions[0])
    stop = threading.Event()

    def writer() -> None:
        for i in range(40):
            storage.write_bytes("big.bin", versions[i % 2])
        stop.set()

    thread = threading.Thread(target=writer)
    thread.start()
    reads = 0
    while not stop.is_set():
        assert storage.read_bytes("big.bin") in versions
        reads += 1
    thread.join()
    assert reads > 0


def test_local_list_skips_temp_files_and_missing_root(tmp_path: Path) -> None:
    (tmp_path / "cats").mkdir()
    (tmp_path / f"{TEMP_PREFIX}abc").write_bytes(b"partial")
    (tmp_path / "cats" / f"{TEMP_PREFIX}def").write_bytes(b"partial")
    (tmp_path / "cats" / "1.jpg").write_bytes(b"x")
    assert [o.key for o in LocalStorage(tmp_path).list()] == ["cats/1.jpg"]
    assert list(LocalStorage(tmp_path / "not-yet").list()) == []


# --- memory --------------------------------------------------------------------------------------


def test_memory_fail_next_is_shared_by_name_and_runs_out() -> None:
    storage = MemoryStorage("mem://faulty/")
    storage.write_bytes("a.jpg", b"x")
    MemoryStorage("mem://faulty/").fail_next(2, operation="read_bytes")
    for _ in range(2):
        with pytest.raises(TransientStorageError, match="injected"):
            storage.read_bytes("a.jpg")
    assert storage.exists("a.jpg")  # other operations are unaffected
    assert storage.read_bytes("a.jpg") == b"x"


def test_memory_fail_next_custom_error_and_listing() -> None:
    storage = MemoryStorage("mem://faulty/in/")
    storage.fail_next(exc=BucketNotFound("no bucket"), operation="list")
    listing = storage.list()  # errors surface on iteration, as with S3
    with pytest.raises(BucketNotFound):
        next(listing)
    assert list(storage.list()) == []


def test_memory_names_are_isolated() -> None:
    MemoryStorage("mem://one/").write_bytes("a", b"1")
    assert not MemoryStorage("mem://two/").exists("a")
    assert MemoryStorage("mem://one/").content_type("a") == "application/octet-stream"


# --- S3 ------------------------------------------------------------------------------------------


@pytest.mark.integration
def test_s3_lists_lazily_page_by_page(s3_server: SeaweedServer, s3_root: str) -> None:
    client = s3_server.client()
    calls: list[str] = []
    client.meta.events.register("before-call.s3.ListObjectsV2", lambda **_: calls.append("list"))
    storage = S3Storage(s3_root, client=client, page_size=2)
    for i in range(5):
        storage.write_bytes(f"frames/{i:03d}.jpg", b"x")
    listing = storage.list("frames/")
    assert calls == []  # nothing fetched before iteration
    assert next(listing).key == "frames/000.jpg"
    assert len(calls) == 1
    assert [o.key for o in listing] == [f"frames/{i:03d}.jpg" for i in range(1, 5)]
    assert len(calls) == 3  # 5 keys, 2 per page


@pytest.mark.integration
def test_s3_records_content_type(s3_server: SeaweedServer, s3_root: str) -> None:
    storage = open_storage(s3_root)
    assert isinstance(storage, S3Storage)
    storage.write_bytes("r/001.json", b"{}")
    head = storage.client.head_object(Bucket=storage.bucket, Key=storage.prefix + "r/001.json")
    assert head["ContentType"] == "application/json"


@pytest.mark.integration
@pytest.mark.parametrize("operation", ["read", "write", "exists", "list"])
def test_s3_missing_bucket(s3_server: SeaweedServer, operation: str) -> None:
    storage = S3Storage("s3://no-such-bucket-ff/in/", client=s3_server.client())
    with pytest.raises(BucketNotFound, match="bucket 'no-such-bucket-ff' does not exist"):
        _run(storage, operation)


@pytest.mark.integration
@pytest.mark.parametrize(
    ("access_key", "secret_key"),
    [
        pytest.param("framefleet", "wrong-secret", id="wrong-secret"),
        pytest.param("nobody", "framefleet-secret", id="unknown-key"),
    ],
)
@pytest.mark.parametrize("operation", ["read", "write", "exists", "list"])
def test_s3_bad_credentials(
    s3_server: SeaweedServer, s3_root: str, access_key: str, secret_key: str, operation: str
) -> None:
    client = s3_server.client(access_key_id=access_key, secret_access_key=secret_key)
    storage = S3Storage(s3_root, client=client)
    with pytest.raises(StorageUnavailable, match="AWS_ACCESS_KEY_ID") as caught:
        _run(storage, operation)
    assert not isinstance(caught.value, RetryableError)


@pytest.mark.parametrize("operation", ["read", "list"])
def test_s3_unreachable_endpoint_fails_fast(operation: str) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    client = make_client(
        endpoint_url=endpoint,
        access_key_id="k",
        secret_access_key="s",
        region="us-east-1",
        connect_timeout_s=0.5,
        max_attempts=2,
    )
    started = time.monotonic()
    with pytest.raises(StorageUnavailable, match="AWS_ENDPOINT_URL") as caught:
        _run(S3Storage("s3://bucket/in/", client=client), operation)
    assert time.monotonic() - started < 5
    assert endpoint in str(caught.value)
    assert not isinstance(caught.value, RetryableError)


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("SlowDown", 503, TransientStorageError),  # throttled: retry later
        ("InternalError", 500, TransientStorageError),
        ("WeirdGatewayFailure", 502, TransientStorageError),  # any 5xx
        ("AccessDenied", 403, StorageUnavailable),  # configuration: not retryable
        ("NoSuchKey", 404, ObjectNotFound),
        ("NoSuchBucket", 404, BucketNotFound),
        ("InvalidObjectState", 403, StorageError),  # anything else
    ],
)
def test_s3_error_translation(
    offline_client: Any, code: str, status: int, expected: type[Exception]
) -> None:
    with Stubber(offline_client) as stub:  # a stubbed error is final: botocore does not retry it
        stub.add_client_error("get_object", service_error_code=code, http_status_code=status)
        with pytest.raises(StorageError) as caught:
            S3Storage("s3://bucket/in/", client=offline_client).read_bytes("a.jpg")
    assert type(caught.value) is expected
    assert isinstance(caught.value.__cause__, botocore.exceptions.ClientError)
    assert isinstance(caught.value, RetryableError) is (expected is TransientStorageError)


def test_s3_connection_dropped_mid_request_is_transient(offline_client: Any) -> None:
    attempts: list[int] = []

    def drop(**_: object) -> None:
        attempts.append(1)
        raise botocore.exceptions.ConnectionClosedError(endpoint_url="http://127.0.0.1:9")

    events = offline_client.meta.events
    events.register("before-send.s3.GetObject", drop, unique_id="drop")
    try:
        with pytest.raises(TransientStorageError, match="try again later") as caught:
            S3Storage("s3://bucket/in/", client=offline_client).read_bytes("a.jpg")
    finally:
        events.unregister("before-send.s3.GetObject", unique_id="drop")
    assert len(attempts) == 2  # botocore retried (max_attempts=2) before we gave up
    assert isinstance(caught.value, RetryableError)


def test_s3_shared_client_is_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    first = shared_client()
    assert shared_client() is first
    monkeypatch.setattr(os, "getpid", lambda: -1)  # as in a forked child
    assert shared_client() is not first


@pytest.mark.integration
def test_s3_create_bucket_is_idempotent(s3_server: SeaweedServer) -> None:
    assert s3_server.create_bucket("twice") == "s3://twice/"
    assert s3_server.create_bucket("twice") == "s3://twice/"


def _run(storage: Storage, operation: str) -> None:
    if operation == "read":
        storage.read_bytes("a.jpg")
    elif operation == "write":
        storage.write_bytes("a.jpg", b"x")
    elif operation == "exists":
        storage.exists("a.jpg")
    else:
        next(storage.list(), None)


@pytest.mark.integration
def test_s3_exists_asks_for_the_bucket_once_for_many_missing_keys(
    s3_server: SeaweedServer, s3_root: str
) -> None:
    # A resumed job asks `exists` for every image, most of them missing: one HeadBucket tells a
    # missing key from a missing bucket for the next BUCKET_CHECK_S, not one per key.
    client = s3_server.client()
    calls: list[str] = []
    client.meta.events.register("before-call.s3.*", lambda model, **_: calls.append(model.name))
    storage = S3Storage(s3_root, client=client)
    storage.write_bytes("here.jpg", b"x")
    assert [storage.exists(f"missing/{n}.jpg") for n in range(20)] == [False] * 20
    assert storage.exists("here.jpg")
    assert calls.count("HeadBucket") == 1
    assert calls.count("HeadObject") == 21


def test_local_durable_writes_fsync_the_file_then_its_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # FRAMEFLEET_FSYNC=1: a written file survives a power loss, data and name; by default a
    # write is only atomic (what a killed process can do to it), with no fsync at all.
    synced: list[str] = []
    fsync = os.fsync

    def spy(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    open_storage(str(tmp_path)).write_bytes("a/plain.json", b"{}")
    assert synced == []
    settings = Settings.from_env({"FRAMEFLEET_FSYNC": "1"})
    durable = open_storage(str(tmp_path), durable=settings.fsync)
    durable.write_bytes("a/kept.json", b"{}")
    source = tmp_path / "video.mp4"
    source.write_bytes(b"frames")
    durable.upload(source, "a/kept.mp4")
    folder = str(tmp_path / "a")
    assert [synced[1], synced[3]] == [folder, folder]
    assert [Path(synced[0]).parent.as_posix(), Path(synced[2]).parent.as_posix()] == [folder] * 2
    assert Path(synced[0]).name.startswith(TEMP_PREFIX)
    assert Path(synced[2]).name.startswith(TEMP_PREFIX)
    assert (tmp_path / "a" / "kept.json").read_bytes() == b"{}"
    assert (tmp_path / "a" / "kept.mp4").read_bytes() == b"frames"
    assert Settings.from_env({"FRAMEFLEET_FSYNC": "0"}).fsync is False
    assert Settings.from_env(Settings(fsync=True).to_env()).fsync is True
