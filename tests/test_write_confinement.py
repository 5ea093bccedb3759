"""No key can make a write land outside the storage root: ``..``, absolute keys and symlinks
(local backend), plus secrets masked from every URL framefleet prints."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from framefleet.core.errors import StorageError
from framefleet.core.redact import redact_url
from framefleet.core.storage import LocalStorage, MemoryStorage


@pytest.fixture
def layout(tmp_path: Path) -> tuple[LocalStorage, Path]:
    """An output root and, beside it, a folder no write may reach."""
    (tmp_path / "out").mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    return LocalStorage(tmp_path / "out"), outside


@pytest.mark.parametrize(
    ("key", "message"),
    [
        # parent segments, at the start or in the middle
        pytest.param("../outside/x.jpg", "escapes the storage root", id="dotdot"),
        pytest.param("a/../../outside/x.jpg", "escapes the storage root", id="inner-dotdot"),
        # absolute paths would make Path's "/" operator drop the root
        pytest.param("/tmp/x.jpg", "invalid key", id="absolute"),
        pytest.param("//x.jpg", "invalid key", id="double-slash"),
        # empty and "." segments, NUL
        pytest.param("a//b.jpg", "invalid key", id="empty-segment"),
        pytest.param("./x.jpg", "invalid key", id="dot"),
        pytest.param("x\0.jpg", "invalid key", id="nul"),
    ],
)
def test_keys_that_climb_out_are_refused(layout, key: str, message: str) -> None:
    storage, outside = layout
    for backend in (storage, MemoryStorage("mem://confinement/out/")):
        with pytest.raises(StorageError, match=message):
            backend.write_bytes(key, b"x")
    assert list(outside.iterdir()) == []


def test_a_symlinked_folder_leading_outside_is_refused(layout) -> None:
    storage, outside = layout
    (storage.root / "photos").symlink_to(outside, target_is_directory=True)
    with pytest.raises(StorageError, match=r"resolves to .*outside, outside the storage root"):
        storage.write_bytes("photos/a.jpg.json", b"{}")
    with pytest.raises(StorageError, match="outside the storage root"):
        storage.write_bytes("photos/new/deeper/a.jpg", b"x")  # mkdir would follow the link too
    assert list(outside.iterdir()) == []


def test_upload_and_delete_do_not_follow_a_symlinked_folder_out(layout, tmp_path: Path) -> None:
    storage, outside = layout
    (outside / "keep.mp4").write_bytes(b"theirs")
    (storage.root / "clips").symlink_to(outside, target_is_directory=True)
    part = tmp_path / "part.mp4"
    part.write_bytes(b"ours")
    with pytest.raises(StorageError, match=r"refusing to write .*outside the storage root"):
        storage.upload(part, "clips/new.mp4")
    with pytest.raises(StorageError, match=r"refusing to delete .*outside the storage root"):
        storage.delete("clips/keep.mp4")
    assert sorted(p.name for p in outside.iterdir()) == ["keep.mp4"]


def test_a_symlinked_file_is_replaced_not_written_through(layout) -> None:
    storage, outside = layout
    victim = outside / "victim.txt"
    victim.write_text("precious")
    os.symlink(victim, storage.root / "a.jpg.json")
    storage.write_bytes("a.jpg.json", b"{}")
    assert victim.read_text() == "precious"  # os.replace swapped the link for a file
    assert not (storage.root / "a.jpg.json").is_symlink()
    assert storage.read_bytes("a.jpg.json") == b"{}"


def test_delete_prunes_the_folders_it_empties_but_never_the_root(layout) -> None:
    # Issue 30 item 10: a video's parts left empty _framefleet/parts/<job>/<video>/ folders.
    storage, _ = layout
    storage.write_bytes("_framefleet/parts/j1/clip.mp4/00000.mp4", b"part")
    storage.write_bytes("_framefleet/keep.json", b"{}")
    storage.delete("_framefleet/parts/j1/clip.mp4/00000.mp4")
    assert not (storage.root / "_framefleet" / "parts").exists()
    assert (storage.root / "_framefleet" / "keep.json").is_file()
    storage.delete("_framefleet/keep.json")
    assert storage.root.is_dir()
    assert list(storage.root.iterdir()) == []
    storage.write_bytes("_framefleet/parts/j1/again.mp4", b"part")  # writes make them again
    assert storage.read_bytes("_framefleet/parts/j1/again.mp4") == b"part"


def test_a_symlink_that_stays_inside_is_fine(layout) -> None:
    storage, _ = layout
    (storage.root / "real").mkdir()
    (storage.root / "alias").symlink_to(storage.root / "real", target_is_directory=True)
    storage.write_bytes("alias/a.jpg", b"x")
    assert (storage.root / "real" / "a.jpg").read_bytes() == b"x"


def test_a_symlinked_root_is_fine(tmp_path: Path) -> None:
    (tmp_path / "real-out").mkdir()
    (tmp_path / "out").symlink_to(tmp_path / "real-out", target_is_directory=True)
    LocalStorage(tmp_path / "out").write_bytes("a/b.jpg", b"x")
    assert (tmp_path / "real-out" / "a" / "b.jpg").read_bytes() == b"x"


@pytest.mark.parametrize(
    ("url", "want"),
    [
        # a Redis password
        ("redis://:hunter2@cache:6379/0", "redis://:**@cache:6379/0"),
        # an ACL user and password, TLS options kept
        (
            "rediss://app:hunter2@cache:6380/1?ssl_cert_reqs=required",
            "rediss://app:**@cache:6380/1?ssl_cert_reqs=required",
        ),
        # a presigned S3 URL: signature, credential and token masked, the rest kept
        (
            "https://b.s3.amazonaws.com/a.jpg?X-Amz-Credential=AKIA%2F1&X-Amz-Signature=f00&X-Amz-Expires=60",
            "https://b.s3.amazonaws.com/a.jpg?X-Amz-Credential=**&X-Amz-Signature=**&X-Amz-Expires=60",
        ),
        # nothing secret: unchanged, byte for byte
        ("unix:///run/redis.sock", "unix:///run/redis.sock"),
        ("s3://bucket/in/", "s3://bucket/in/"),
        ("not a url at all", "not a url at all"),
    ],
)
def test_redact_url(url: str, want: str) -> None:
    assert redact_url(url) == want
