"""Cost of the results tables: compaction's peak memory and time as the rows grow, the query
time of README's questions, and what writing a part adds to each message.

Synthetic parts stand in for a job's (8 images a part, 1 to 4 boxes an image, real class names,
written by `framefleet.dataset.write_part` to a local folder), so 100k or 1M rows cost seconds.
Each compaction runs in a fresh process whose peak RSS (VmHWM) is read at its end; the baseline
in the same run is a fresh process that only imports the same modules, and the naive way: all
parts read into one Arrow table in memory, deduplicated with pyarrow, written as one file.

Usage::

    .venv/bin/python -m benchmarks.results_tables                     # 10,000 and 100,000 rows
    .venv/bin/python -m benchmarks.results_tables --rows 10000 100000 1000000
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from framefleet.core.documents import ImageDocument, ModelInfo
from framefleet.core.results import Detections
from framefleet.core.storage import open_storage
from framefleet.core.tables import Rows
from framefleet.dataset import open_results, part_name, write_part

CLASSES = ["person", "car", "bicycle", "dog", "cat", "bus", "truck", "bird", "chair", "bottle"]
PER_PART = 8
QUESTIONS = {
    "boxes per class": "SELECT class_name, count(*) FROM detections GROUP BY 1",
    "people > 0.8": "SELECT DISTINCT item FROM detections WHERE class_name = 'person' "
    "AND score > 0.8",
    "per camera": "SELECT split_part(item, '/', 1), count(*), sum(detections) FROM images "
    "GROUP BY 1",
}

_CHILD = """
import json, resource, sys, time
from framefleet.core.storage import open_storage
mode, root = sys.argv[1], sys.argv[2]
start = time.perf_counter()
if mode == "compact":
    from framefleet.dataset import compact
    rows = compact(open_storage(root)).rows
elif mode == "naive":
    import pyarrow.parquet as pq, pyarrow.compute as pc, pathlib
    from framefleet.dataset.views import table_files
    from framefleet.core.tables import TABLES
    rows = {}
    for table in TABLES:
        files = [pathlib.Path(root) / o.key for o in table_files(open_storage(root), table)]
        whole = pq.ParquetDataset(files).read() if files else None
        if whole is not None:
            whole = whole.sort_by([("item", "ascending")])
            pq.write_table(whole, pathlib.Path(root) / f"naive-{table}.parquet")
        rows[table] = 0 if whole is None else whole.num_rows
else:  # baseline: the same imports, no work
    import framefleet.dataset, pyarrow.parquet, duckdb
    rows = {}
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "peak_mb": peak, "rows": rows}))
"""


def make_parts(root: Path, rows: int, seed: int = 0) -> int:
    """Parts holding about ``rows`` detection rows; returns the items."""
    rng = random.Random(seed)
    dst = open_storage(str(root))
    info = ModelInfo("yolox-nano", "detection", "0" * 64, "cv2.dnn")
    made = items = 0
    while made < rows:
        keys = [f"cam{(items + i) % 20:02d}/img-{items + i:08d}.jpg" for i in range(PER_PART)]
        part = Rows(part_name("bench", f"b{items // PER_PART:07d}", keys), "bench")
        for key in keys:
            n = rng.randint(1, 4)
            x1 = np.array([rng.uniform(0, 600) for _ in range(n)], np.float32)
            y1 = np.array([rng.uniform(0, 400) for _ in range(n)], np.float32)
            found = Detections(
                xyxy=np.stack([x1, y1, x1 + 40, y1 + 80], axis=1),
                confidence=np.array([rng.random() for _ in range(n)], np.float32),
                class_id=np.array([rng.randrange(len(CLASSES)) for _ in range(n)], np.int32),
            )
            names = np.array([CLASSES[c] for c in found.class_id])
            found = Detections(
                found.xyxy, found.confidence, found.class_id, data={"class_name": names}
            )
            doc = ImageDocument(
                f"file:///in/{key}",
                info,
                768,
                576,
                found,
                timings_ms={"infer": 14.0},
                worker="bench:1",
            )
            part.add_document(key, doc)
            made += n
        items += PER_PART
        write_part(dst, part)
    return items


def child(mode: str, root: Path) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, mode, str(root)], capture_output=True, text=True
    )
    if done.returncode:
        raise RuntimeError(f"{mode} on {root} failed:\n{done.stderr[-3000:]}")
    result: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    return result


def part_cost(root: Path, parts: int = 200) -> float:
    """Milliseconds to build and write one part of 8 images (encode + atomic local write)."""
    start = time.perf_counter()
    make_parts(root, parts * PER_PART * 5 // 2, seed=1)
    return (time.perf_counter() - start) * 1000 / parts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--modes", nargs="+", default=["naive", "compact"])
    args = parser.parse_args()
    print(f"{'rows':>9} {'items':>8} {'parts':>7}  {'mode':<10} {'seconds':>8} {'peak RSS':>9}")
    with tempfile.TemporaryDirectory(prefix="ff-bench-tables-") as tmp:
        base = child("baseline", Path(tmp))
        print(
            f"{'':>9} {'':>8} {'':>7}  {'imports':<10} {base['seconds']:8.2f} "
            f"{base['peak_mb']:7.0f} MB"
        )
        for rows in args.rows:
            for mode in args.modes:
                root = Path(tmp) / f"{mode}-{rows}"
                items = make_parts(root, rows)
                got = child(mode, root)
                print(
                    f"{rows:9,d} {items:8,d} {items // PER_PART:7,d}  {mode:<10} "
                    f"{got['seconds']:8.2f} {got['peak_mb']:7.0f} MB"
                )
            with open_results(open_storage(str(Path(tmp) / f"compact-{rows}"))) as results:
                for name, sql in QUESTIONS.items():
                    start = time.perf_counter()
                    results.sql(sql).fetchall()
                    ms = (time.perf_counter() - start) * 1000
                    print(f"{rows:9,d} {'':>8} {'':>7}  query: {name:<16} {ms:7.1f} ms")
            start = time.perf_counter()
            with open_results(open_storage(str(Path(tmp) / f"compact-{rows}"))) as results:
                results.sql(QUESTIONS["boxes per class"]).fetchall()
            ms = (time.perf_counter() - start) * 1000
            print(f"{rows:9,d} {'':>8} {'':>7}  query incl. opening the tables {ms:7.1f} ms")
        print(
            f"one part of {PER_PART} images, built and written: "
            f"{part_cost(Path(tmp) / 'cost'):.2f} ms"
        )


if __name__ == "__main__":
    main()
