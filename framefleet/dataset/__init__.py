"""The results as data: each job's ``images`` and ``detections`` tables, in Parquet beside its
outputs.

Workers write one part per message as they record its outcomes (`parts`); `open_results` reads
the compacted files and the parts as one pair of tables in DuckDB, counting each item once;
`compact` rewrites them as a few large files when the job ends. The schema is
`framefleet.core.tables`; the layout under an output root::

    _framefleet/results/images/<generation>-0000.parquet        compacted
    _framefleet/results/detections/<generation>-0000.parquet
    _framefleet/results/parts/{images,detections}/<part>.parquet  not compacted yet
"""

from framefleet.dataset.compact import Compacted, compact
from framefleet.dataset.parts import part_name, write_part
from framefleet.dataset.views import Fill, Results, open_results

__all__ = ["Compacted", "Fill", "Results", "compact", "open_results", "part_name", "write_part"]
