"""Helpers of the fault tests: real processes found and killed, exactly-once checks, and the
figures (seconds from fault to completion) printed at the end of the run."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
from tables import assert_tables_match

from benchmarks.procstats import child_pids
from framefleet.core.jobrecord import JobRecord
from framefleet.core.outputs import annotated_key, is_report_key, result_key
from framefleet.core.storage import Storage
from framefleet.services.processes import LoggedProcess
from framefleet.state.jobs import JobStore
from framefleet.state.leases import LeaseStore


@dataclass(frozen=True)
class Figure:
    """One fault survived: what, how many, and how long the job took to finish after it."""

    test: str
    fault: str
    injected: int
    items: int
    done: int
    failed: int
    seconds_to_finish: float


FIGURES: list[Figure] = []
"""Filled by `record_figure`; printed by conftest's terminal summary."""


def record_figure(
    test: str, fault: str, injected: int, record: JobRecord, fault_at: float
) -> Figure:
    """Note how long after the (last) fault at wall time ``fault_at`` the job finished."""
    finished = record.finished_at or time.time()
    figure = Figure(
        test=test,
        fault=fault,
        injected=injected,
        items=record.total,
        done=record.done,
        failed=record.failed,
        seconds_to_finish=round(finished - fault_at, 1),
    )
    FIGURES.append(figure)
    print(f"FAULT FIGURE {json.dumps(figure.__dict__)}")
    return figure


def holders(leases: LeaseStore) -> list[tuple[int, str]]:
    """(pid, current item) of each process holding a lease on this machine."""
    out = []
    for _, holder, item in leases.held():
        _, _, pid = holder.rpartition(":")
        if pid.isdigit():
            out.append((int(pid), item))
    return out


def kill(pid: int) -> bool:
    """SIGKILL ``pid``; False if it was gone already."""
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    return True


def assert_exactly_once(store: JobStore, record: JobRecord, dst: Storage, keys: list[str]) -> None:
    """Every input has exactly one outcome; every success has whole outputs; nothing extra.

    - counts: total == inputs == done + failed, and the done set and failed hash are disjoint;
    - each done item has a decodable annotated image and a parseable result JSON;
    - the output holds nothing but those two files per done item (and the report, and what a
      failed item wrote before it failed), so no item was written under a second name;
    - the results tables hold one row per item and per box, compacted (`tables`).
    """
    assert record.finished, record
    assert record.total == len(keys) == record.done + record.failed, record
    done = store.client.smembers(f"{store.prefix}:job:{record.job_id}:done")
    failed = set(store.client.hkeys(f"{store.prefix}:job:{record.job_id}:failed"))
    assert not done & failed, done & failed
    assert done | failed == set(keys), set(keys) ^ (done | failed)
    expected = set()
    for key in sorted(done):
        data = dst.read_bytes(annotated_key(key))
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        assert image is not None, f"annotated output of {key} is not a whole image"
        assert image.size > 0, key
        document = json.loads(dst.read_bytes(result_key(key)))
        assert document["source"].endswith(key)
        expected |= {annotated_key(key), result_key(key)}
    partial = {k for item in failed for k in (annotated_key(item), result_key(item))}
    written = {obj.key for obj in dst.list() if not is_report_key(obj.key)}
    assert expected <= written, expected - written
    assert written - expected <= partial, written - expected - partial  # a failed item's leftovers
    # ...and the results tables hold each item once, with the boxes of its document
    assert_tables_match(dst, done, failed)


def freeze_node_holding(
    leases: LeaseStore, node: LoggedProcess, wanted: Callable[[str], bool], timeout_s: float = 120
) -> str:
    """SIGSTOP the whole process group of ``node`` once one of its processes holds a lease on an
    item that ``wanted`` accepts, and return that item.

    Frozen, the node can finish nothing more, so the job cannot end before the fault that the
    caller injects next (a SIGKILL): the test does not depend on the machine's speed.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        pids = {node.pid, *child_pids(node.pid)}
        if any(pid in pids and wanted(item) for pid, item in holders(leases)):
            os.killpg(node.pid, signal.SIGSTOP)
            held = [item for pid, item in holders(leases) if pid in pids and wanted(item)]
            if held:
                return held[0]
            os.killpg(node.pid, signal.SIGCONT)  # it finished that item just before the stop
        time.sleep(0.02)
    raise AssertionError(f"node {node.pid} never held a lease on a wanted item")


def thaw(node: LoggedProcess) -> None:
    """SIGCONT the process group of a node frozen by `freeze_node_holding`."""
    os.killpg(node.pid, signal.SIGCONT)
