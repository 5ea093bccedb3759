"""`submit --follow`: the option types (--interval, --until) and the producer's foreground loop.

The producer prints the job id first (as `submit` does), one line per listing round that found
something, and, once the job is closed (``--until``, ``--max-items``, `framefleet cancel`) and its
enqueued items are done, the job's summary. Ctrl-C (or SIGTERM) stops only the producer: the job
still follows, and the same command started again resumes it.
"""

from __future__ import annotations

import re
import sys
import time
from datetime import UTC, datetime
from typing import Any

import click

from framefleet.cli.base import EXIT_INTERRUPTED, EXIT_ITEMS_FAILED, EXIT_OK
from framefleet.core.sampling import Sampling
from framefleet.core.settings import Settings

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")


def parse_duration(text: str) -> float:
    """Seconds in ``text``: ``10s``, ``500ms``, ``2m``, ``1.5h``, ``1d``, or a number of seconds.

    Raises:
        ValueError: not a duration.
    """
    match = _DURATION_RE.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration; e.g. 10s, 500ms, 2m, 1h")
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


def parse_until(text: str, now: float | None = None) -> float:
    """The epoch time ``text`` names: an ISO 8601 time (``2026-11-25T18:00:00Z``; no zone: UTC)
    or a duration from now (``30m``, ``+2h``).

    Raises:
        ValueError: neither.
    """
    now = time.time() if now is None else now
    try:
        return now + parse_duration(text.removeprefix("+"))
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{text!r} is neither a time (2026-11-25T18:00:00Z, UTC if no zone) nor a duration "
            "from now (30m, 2h)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


class _Seconds(click.ParamType[float]):
    """A click option type for a parser of text into seconds (numbers pass through)."""

    def parse(self, text: str) -> float:
        raise NotImplementedError

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, int | float):
            return float(value)
        try:
            return self.parse(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class Duration(_Seconds):
    """`parse_duration`, more than 0 s."""

    name = "duration"

    def parse(self, text: str) -> float:
        seconds = parse_duration(text)
        if seconds <= 0:
            raise ValueError(f"{text!r} must be more than 0 s")
        return seconds


class Until(_Seconds):
    """`parse_until`: an epoch time."""

    name = "time"

    def parse(self, text: str) -> float:
        return parse_until(text)


def run_follow(
    settings: Settings,
    input_uri: str,
    output_uri: str,
    model: str,
    *,
    interval_s: float,
    until: float | None,
    max_items: int | None,
    engine: str,
    force: bool,
    sampling: Sampling,
    compact_every_s: float = 600.0,
) -> None:
    """Follow INPUT_URI in the foreground until the job is closed, then show its summary and
    exit 0 (every item done) or 1."""
    from framefleet.cli.follow import follow as watch
    from framefleet.cli.follow import warn_if_no_worker
    from framefleet.core.jobrecord import JobStatus
    from framefleet.queue import create_app
    from framefleet.state.follow import FollowStore
    from framefleet.state.jobs import JobStore
    from producer.follow import FollowOptions, Tick, follow
    from producer.progress import summary_table

    started: list[str] = []

    def created(job_id: str, resumed: bool) -> None:
        started.append(job_id)
        click.echo(job_id)
        how = "resuming" if resumed else "following"
        click.echo(f"{how} {input_uri} every {interval_s:g} s (job {job_id})", err=True)
        jobs = JobStore.from_url(settings.redis_url)
        warn_if_no_worker(settings, jobs, jobs.get(job_id))

    def standby(job_id: str, other: str) -> None:
        click.echo(
            f"job {job_id} is listed by producer {other}; this one stands by and takes over if "
            "that one stops",
            err=True,
        )

    def ticked(tick: Tick) -> None:
        if tick.enqueued or tick.deferred:
            deferred = f", {tick.deferred} rewrites wait for their earlier run" * bool(
                tick.deferred
            )
            click.echo(
                f"tick {tick.number}: {tick.enqueued} enqueued of {tick.listed} listed"
                f"{' (full listing)' if tick.full else ''}{deferred}",
                err=True,
            )

    options = FollowOptions(
        interval_s=interval_s, until=until, max_items=max_items, compact_every_s=compact_every_s
    )
    try:
        outcome = follow(
            settings,
            create_app(settings),
            input_uri,
            output_uri,
            model,
            options,
            engine=engine,
            force=force,
            sampling=sampling,
            on_created=created,
            on_tick=ticked,
            on_standby=standby,
        )
    except KeyboardInterrupt:
        job = started[0] if started else "(none yet)"
        click.echo(
            f"\nproducer stopped; job {job} still follows: run the same command again to resume "
            f"it, or `framefleet cancel {job}` to close it",
            err=True,
        )
        sys.exit(EXIT_INTERRUPTED)
    click.echo(
        f"job {outcome.job_id} closed ({outcome.reason}); finishing what was enqueued", err=True
    )
    jobs = JobStore.from_url(settings.redis_url, reconnect_s=settings.redis_wait_s)
    record = watch(settings, jobs, outcome.job_id)
    info = FollowStore(jobs).get(outcome.job_id)
    click.echo(summary_table(record, list(jobs.failures(outcome.job_id)), info))
    sys.exit(
        EXIT_OK if record.status is JobStatus.DONE and not record.failed else EXIT_ITEMS_FAILED
    )
