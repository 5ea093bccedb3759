"""Producer speed and memory: `submit` of a folder of many small keys, no workers.

Run as a child process so its peak RSS is the producer's own:
``python -m benchmarks.producer_rate FOLDER REDIS_URL`` prints
``{"items", "seconds", "peak_rss_mb"}``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from benchmarks.procstats import peak_rss_mb
from framefleet.core.settings import Settings
from framefleet.queue import create_app
from producer.submit import submit


def make_keys(folder: Path, count: int) -> None:
    """``count`` empty ``.jpg`` files, 1000 per subfolder (the producer never opens them)."""
    for i in range(count):
        sub = folder / f"{i // 1000:04d}"
        if i % 1000 == 0:
            sub.mkdir(parents=True, exist_ok=True)
        (sub / f"{i:07d}.jpg").touch()


def main() -> None:
    folder, redis_url = sys.argv[1], sys.argv[2]
    settings = Settings.from_env(redis_url=redis_url)
    start = time.perf_counter()
    result = submit(
        settings, create_app(settings), folder, folder.rstrip("/") + "-out", "yolox-nano"
    )
    seconds = time.perf_counter() - start
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec, so it would report the
    # benchmark process this child was forked from.
    peak = peak_rss_mb(os.getpid())
    print(json.dumps({"items": result.items, "seconds": seconds, "peak_rss_mb": peak}))


if __name__ == "__main__":
    main()
