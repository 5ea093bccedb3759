"""One hook that every message and item outcome passes through.

The task's settle path calls `Observer.on_message` when a message starts and ends and
`Observer.on_item` once per item outcome (done, failed, or sent back for a retry). Metrics,
progress events and reports read outcomes here instead of being called from scattered places.

Example:
    >>> class Count(Observer):
    ...     def __init__(self) -> None:
    ...         self.done = 0
    ...     def on_item(self, job: Message, result: ItemResult, outcome: Outcome) -> None:
    ...         self.done += outcome == "done"
    >>> observers = Observers([Count()])
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Literal

from framefleet.core.messages import Message
from framefleet.inference.pipeline import ItemResult

log = logging.getLogger(__name__)

Outcome = Literal["done", "failed", "retry"]
"""What the task did with an item: recorded it done, recorded it failed, or sent it back."""

Phase = Literal["started", "finished"]
"""Where a message is: started (decoded, job not cancelled) or finished (settled or raised)."""


class Observer:
    """Base observer: every hook does nothing; subclasses override what they watch.

    Hooks must not raise: `Observers` logs and swallows an observer's error so that watching
    can never lose an outcome.
    """

    def on_message(self, job: Message, phase: Phase) -> None:
        """A message of ``job`` started or finished (whatever its outcome)."""

    def on_item(self, job: Message, result: ItemResult, outcome: Outcome) -> None:
        """One item of ``job`` got ``outcome``; ``result`` carries its error and stage timings."""


class Observers(Observer):
    """Several observers behind the one hook; an observer that raises is logged and skipped."""

    def __init__(self, observers: Iterable[Observer] = ()) -> None:
        self.observers = list(observers)

    def add(self, observer: Observer) -> None:
        """Watch with ``observer`` too."""
        self.observers.append(observer)

    @contextmanager
    def message(self, job: Message) -> Iterator[None]:
        """``on_message(job, "started")`` now and ``"finished"`` on the way out, raised or not
        (a Celery retry leaves by an exception)."""
        self.on_message(job, "started")
        try:
            yield
        finally:
            self.on_message(job, "finished")

    def on_message(self, job: Message, phase: Phase) -> None:
        for observer in self.observers:
            try:
                observer.on_message(job, phase)
            except Exception:
                log.exception("observer %r failed on a message of job %s", observer, job.job_id)

    def on_item(self, job: Message, result: ItemResult, outcome: Outcome) -> None:
        for observer in self.observers:
            try:
                observer.on_item(job, result, outcome)
            except Exception:
                log.exception("observer %r failed on item %s", observer, result.item)
