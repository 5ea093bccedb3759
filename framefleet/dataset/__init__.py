"""The results as data: each job's ``images`` and ``detections`` tables, in Parquet beside its
outputs.

Workers write one part per message as they record its outcomes (`parts`); `open_results` reads
the compacted files and the parts as one pair of tables in DuckDB, counting each item once;
`compact` rewrites them as a few large files when the job ends. The schema is
`framefleet.core.tables`; the layout under an output root::

    _framefleet/results/images/<generation>-0000.parquet        compacted
    _framefleet/results/detections/<generation>-0000.parquet
    _framefleet/results/parts/{images,detections}/<part>.parquet  not compacted yet

The reading side (`compact`, `open_results`) loads on first use: a worker process writes parts
with pyarrow alone and never pays for DuckDB (about 24 MB of RSS each).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from framefleet.dataset.parts import part_name, write_part

if TYPE_CHECKING:
    from framefleet.dataset.compaction import Compacted, compact
    from framefleet.dataset.views import Fill, Results, open_results

_LAZY = {
    "Compacted": "framefleet.dataset.compaction",
    "compact": "framefleet.dataset.compaction",
    "Fill": "framefleet.dataset.views",
    "Results": "framefleet.dataset.views",
    "open_results": "framefleet.dataset.views",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # looked up once
    return value


__all__ = ["Compacted", "Fill", "Results", "compact", "open_results", "part_name", "write_part"]
