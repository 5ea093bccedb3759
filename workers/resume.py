"""Resume: an item whose outputs already exist and are complete is counted done, not redone.

"Complete" means both outputs of the item are there (the annotated image and the result JSON),
and the JSON is a result document of the same model: outputs are written annotated image first,
JSON last, each atomically, so a JSON present means its image is too, and a job killed half-way
(or a producer killed mid-listing and submitted again) resumes where it stopped. A document of
another model is not a result of this job: the item runs again and overwrites it.
``submit --force`` runs every item again. A job whose output root held nothing when it was
submitted (`framefleet.core.outputs.holds_nothing`) has nothing to resume, so its workers skip
the look (on S3, a HEAD per image).
"""

from __future__ import annotations

from collections.abc import Callable

from framefleet.core.documents import ImageDocument, read_document
from framefleet.core.errors import PipelineError
from framefleet.core.outputs import annotated_key, result_key
from framefleet.core.storage import Storage
from framefleet.inference.pipeline import ItemResult, class_counts


def existing_result(
    item: str, dst: Storage, model: str, label: Callable[[int], str]
) -> ItemResult | None:
    """The outcome already in ``dst`` for image ``item`` run with ``model``; None if it must run.

    Example:
        >>> existing_result("a.jpg", dst, "yolox-nano", adapter.label) is None  # nothing yet
        True
    """
    try:
        if not dst.exists(annotated_key(item)):
            return None
        document = read_document(dst.read_bytes(result_key(item)))
    except (PipelineError, ValueError):  # missing, unreadable or not a result document: redo it
        return None
    if not isinstance(document, ImageDocument) or document.model.name != model:
        return None
    return ItemResult(
        item=item,
        ok=True,
        classes=class_counts(document.results, label, document.model.task),
        document=document,
    )
