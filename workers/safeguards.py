"""The safeguards a unit passes before it runs, as an ordered chain.

Each safeguard looks at one unit (an image, a video, a video segment) of a running message and
either passes it on (None), skips it because it is settled already (False), or gives the unit's
outcome without running it (an `ItemResult`, recorded like any other). `CHAIN` is the order,
written once: a done unit is never failed as poison; a poison unit is never resumed.

Example:
    >>> class SkipEverything(Safeguard):
    ...     def before(self, guard: Guard, unit: str) -> Verdict:
    ...         return False
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from framefleet.inference.pipeline import ItemResult
from workers.resume import existing_result

if TYPE_CHECKING:
    from workers.guard import Guard

Verdict = ItemResult | bool | None
"""None: go on; False: skip the unit (settled already); an `ItemResult`: its outcome, unrun."""


class Safeguard:
    """One check before a unit runs; the default passes every unit on."""

    def before(self, guard: Guard, unit: str) -> Verdict:
        """What to do with ``unit`` of ``guard``'s message."""
        return None


class SkipDone(Safeguard):
    """A unit that already succeeded (a redelivered message) is skipped."""

    def before(self, guard: Guard, unit: str) -> Verdict:
        return False if unit in guard.begun.done else None


class FailPoison(Safeguard):
    """A unit whose starts alone died with their process ``max_crashes`` times is failed."""

    def before(self, guard: Guard, unit: str) -> Verdict:
        limit = guard.rt.settings.max_crashes
        crashes = guard.begun.crashes.get(unit, 0)
        if crashes < limit:
            return None
        return ItemResult(
            item=unit,
            ok=False,
            error="WorkerCrashed",
            message=(
                f"{unit}: its worker process died or hung past the time limit {crashes} times "
                "while processing it (killed, out of memory, or a crash in native code); not "
                f"retried again (FRAMEFLEET_MAX_CRASHES={limit}). Check the file, then "
                "`framefleet retry`"
            ),
        )


class RunSuspectsAlone(Safeguard):
    """A unit that was in a message whose process died runs alone, its lease saying so, so a
    death now is charged to it only; the units after the suspects run together again."""

    def before(self, guard: Guard, unit: str) -> Verdict:
        if len(guard.units) == 1:
            return None  # the only unit runs alone already (its start counted by `begin`)
        alone = unit if unit in guard.begun.crashes else ""
        if alone != guard.alone:
            if guard.alone:
                # The suspect before this one has its outcome: recorded now, its count cleared
                # with it, so a death from here on is not charged to it too.
                guard.flush(release=False)
            guard.rt.leases.mark(guard.job.job_id, guard.lease_id, alone)
            guard.alone = alone
            if alone:
                guard.counted.add(alone)
        return None


class Resume(Safeguard):
    """An image whose outputs are complete from an earlier run is counted done, not redone
    (not with ``submit --force``, nor when the output root was empty at submit, nor when a
    following job saw the image rewritten since: its outputs are of the old content)."""

    def before(self, guard: Guard, unit: str) -> Verdict:
        params = guard.begun.params
        if not guard.batch or params.get("force") or params.get("fresh_output"):
            return None
        if unit in guard.begun.redo:
            return None
        job = guard.job
        try:
            label = guard.rt.models.get(job.model, job.engine).adapter.label
        except Exception:  # the model does not load: let the item fail with that reason
            return None
        return existing_result(unit, guard.rt.storage(job.output_uri), job.model, label)


CHAIN: tuple[Safeguard, ...] = (SkipDone(), FailPoison(), RunSuspectsAlone(), Resume())
"""The safeguards, in the order a unit meets them."""
