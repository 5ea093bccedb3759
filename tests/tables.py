"""Checks of a job's results tables (`framefleet.dataset`) against its result documents."""

from __future__ import annotations

import time
from collections.abc import Iterable

import numpy as np

from framefleet.core.documents import ImageDocument, VideoDocument, read_document
from framefleet.core.outputs import result_key, table_parts_prefix
from framefleet.core.storage import Storage
from framefleet.core.tables import DETECTIONS, IMAGES
from framefleet.dataset import open_results


def assert_tables_match(
    dst: Storage, done: Iterable[str], failed: Iterable[str] = (), timeout_s: float = 60
) -> None:
    """The tables under ``dst`` hold one row per item and one per box of its document, and are
    compacted: no part left, no item twice in the files. Polls: the process that ended the job
    compacts after it recorded the end."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            check_tables(dst, set(done), set(failed))
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def check_tables(dst: Storage, done: set[str], failed: set[str]) -> None:
    for table in (IMAGES, DETECTIONS):
        left = [obj.key for obj in dst.list(table_parts_prefix(table))]
        assert not left, f"parts not compacted: {left[:5]}"
    with open_results(dst) as results:
        raw = results.sql("SELECT count(*) FROM raw_images").fetchone()
        rows = results.sql("SELECT item, status, error FROM images").fetchall()
        assert raw == (len(rows),), f"{raw} rows in the files for {len(rows)} items: duplicates"
        status = {item: s for item, s, _ in rows}
        assert len(status) == len(rows)
        assert status == {**dict.fromkeys(done, "done"), **dict.fromkeys(failed, "failed")}
        assert all(error for _, s, error in rows if s == "failed")
        boxes = results.sql(
            "SELECT item, frame, track_id, class_id, score, x1, y1, x2, y2 FROM detections "
            "ORDER BY item, frame NULLS FIRST, rank"
        ).fetchall()
    by_item: dict[str, list[tuple]] = {}
    for row in boxes:
        by_item.setdefault(row[0], []).append(row[1:])
    for item in done:
        document = read_document(dst.read_bytes(result_key(item)))
        want = []
        if isinstance(document, ImageDocument):
            found = document.results
            want = [
                (None, None, int(c), *[float(v) for v in b])
                for c, b in zip(found.class_id, found.xyxy, strict=True)
            ]
            got = [(f, t, c, *box) for f, t, c, _, *box in by_item.get(item, [])]
            scores = [row[3] for row in by_item.get(item, [])]
            np.testing.assert_allclose(scores, found.confidence, atol=1e-4)
        else:
            assert isinstance(document, VideoDocument)
            for line in document.frame_results(dst.read_bytes):
                if line.results is None:
                    continue
                ids = line.results.tracker_id
                for i in range(len(line.results)):
                    track = None if ids is None else int(ids[i])
                    want.append(
                        (
                            line.frame,
                            track,
                            int(line.results.class_id[i]),
                            *[float(v) for v in line.results.xyxy[i]],
                        )
                    )
            got = [(f, t, c, *box) for f, t, c, _, *box in by_item.get(item, [])]
        assert len(got) == len(want), f"{item}: {len(got)} rows, {len(want)} boxes in its document"
        for g, w in zip(got, want, strict=True):
            assert g[:3] == w[:3], (item, g, w)
            np.testing.assert_allclose(g[3:], w[3:], atol=0.01)
