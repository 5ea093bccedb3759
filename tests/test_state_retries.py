"""Every write the fleet state sends as a MULTI/EXEC pipeline lands whole when the connection
drops in the middle of it: the pipeline is built anew on each attempt (`Connection.pipeline`).

A proxy cuts the connection just before EXEC more times than redis-py retries by itself, so the
write lands only through framefleet's own retry. Built outside the retried callable (as plan,
create and the exporter once did), the retry sent an empty pipeline and the write was lost.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from urllib.parse import urlparse

import pytest
from dropproxy import DropProxy

from framefleet.core.messages import VideoMerge
from framefleet.state.connection import Connection
from framefleet.state.follow import FollowStore, identity
from framefleet.state.jobs import JobStore
from framefleet.state.leases import LeaseStore
from framefleet.state.presence import Presence
from framefleet.state.videos import VideoStore

pytestmark = pytest.mark.integration

DROPS = 4
"""Transactions cut in a row: more than redis-py's own retries of a pipeline."""


@pytest.fixture
def proxy(redis_url: str) -> Iterator[DropProxy]:
    port = urlparse(redis_url).port
    assert port is not None
    proxy = DropProxy(port)
    yield proxy
    proxy.close()


@pytest.fixture
def via_proxy(proxy: DropProxy) -> JobStore:
    """A job store whose every call goes through the proxy and rides out 30 s of failures."""
    return JobStore(Connection.from_url(proxy.url, reconnect_s=30))


def merge(job_id: str) -> VideoMerge:
    return VideoMerge(
        job_id=job_id,
        input_uri="file:///in/",
        output_uri="file:///out/",
        model="yolox-nano",
        item="clip.mp4",
        segments=3,
        segment_frames=30,
        frames=90,
        fps=30.0,
        width=64,
        height=48,
    )


def create(jobs: JobStore, direct: JobStore) -> None:
    job_id = jobs.create("file:///in/", "file:///out/", "yolox-nano", params={"batch_size": 8})
    record = direct.get(job_id)
    assert (record.model, record.params, record.total) == ("yolox-nano", {"batch_size": 8}, 0)
    assert job_id in direct.recent_ids(10)


def plan(jobs: JobStore, direct: JobStore) -> None:
    job_id = direct.create("file:///in/", "file:///out/", "yolox-nano")
    VideoStore(jobs).plan(job_id, "clip.mp4", merge(job_id))
    (video,) = direct.get(job_id).videos
    assert (video.item, video.segments_total, video.state) == ("clip.mp4", 3, "running")
    assert VideoStore(direct).merge_message(job_id, "clip.mp4") == merge(job_id)


def follow_open(jobs: JobStore, direct: JobStore) -> None:
    job_id = direct.create("file:///in/", "file:///out/", "yolox-nano")
    ident = identity("file:///in/", "file:///out/", "yolox-nano")
    FollowStore(jobs).open(job_id, ident, interval_s=5)
    assert FollowStore(direct).find(ident) == job_id
    assert direct.client.hget(direct.keys.job(job_id), "following") == "1"


def follow_tick(jobs: JobStore, direct: JobStore) -> None:
    job_id = direct.create("file:///in/", "file:///out/", "yolox-nano")
    FollowStore(direct).open(job_id, "ident", interval_s=5)
    assert FollowStore(jobs).tick(job_id) == 1
    info = FollowStore(direct).get(job_id)
    assert info is not None
    assert (info.ticks, info.beat is not None) == (1, True)


def announce(jobs: JobStore, direct: JobStore) -> None:
    Presence(jobs.conn).announce("w1@host", ["framefleet.yunet"])
    assert [w.node for w in Presence(direct.conn).consumers("framefleet.yunet")] == ["w1@host"]


def release(jobs: JobStore, direct: JobStore) -> None:
    job_id = direct.create("file:///in/", "file:///out/", "yolox-nano")
    LeaseStore(direct.conn).begin("t1", job_id, "task", "q", {"items": ["a"]}, "h:1", ["a"])
    assert [lease for lease, _, _ in LeaseStore(direct.conn).held()] == ["t1"]
    LeaseStore(jobs.conn).release("t1")
    assert LeaseStore(direct.conn).held() == []


def snapshot(jobs: JobStore, direct: JobStore) -> None:
    job_id = direct.create("file:///in/", "file:///out/", "yolox-nano")
    direct.add_items(job_id, 2)
    direct.record(job_id, "a.jpg", ok=True)
    record = jobs.get(job_id)
    assert (record.total, record.done) == (2, 1)


@pytest.mark.parametrize(
    "write",
    [create, plan, follow_open, follow_tick, announce, release, snapshot],
)
def test_a_transaction_cut_before_exec_is_sent_again_whole(
    proxy: DropProxy,
    via_proxy: JobStore,
    job_store: JobStore,
    write: Callable[[JobStore, JobStore], None],
) -> None:
    proxy.arm(DROPS)
    write(via_proxy, job_store)
    assert proxy.dropped == DROPS  # every cut happened, and the write still landed
