"""The latency rollup: per-minute histograms of the completed jobs' wait and run times
(``LatencyMinute``), so the dashboard's percentiles come from every job at a cost set by the
window, not by the table.

A minute is rolled twice: once it has closed (plus ``GRACE``), and a last time ``REVISIT``
after: a completion is stamped with its handler's end and may be written a moment later,
into a minute already rolled. A completion written later still (an outage of the database
longer than that) is left out of the rollup. Each roll reads the minute's completed jobs once
(at 10,000 jobs/s, 600,000 rows twice a minute, about 3% of one core). Rolling is idempotent
(an upsert of the whole minute), so any number of processes may do it at once."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from .. import latency
from ..models import Job, JobStatus, LatencyMinute

MINUTE = timedelta(minutes=1)
#: A minute is rolled this long after it closed.
GRACE = timedelta(seconds=10)
#: ... and a last time this long after it closed.
REVISIT = timedelta(minutes=2)
#: How far back a pass fills minutes that have no rollup (the dashboard shows 24 hours).
HORIZON = timedelta(hours=24)
#: Most minutes one pass rolls (newest first): a fresh install fills its day over a few
#: minutes of passes, without a burst of queries at a worker's start.
PER_PASS = 60
#: Rollups older than this are deleted.
KEEP = timedelta(hours=48)


def floor_minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def closed_minutes(start: datetime, end: datetime) -> list[datetime]:
    """The minutes that begin in [start, end), oldest first."""
    minute, out = floor_minute(start), []
    if minute < start:
        minute += MINUTE
    while minute < end:
        out.append(minute)
        minute += MINUTE
    return out


def measure(start: datetime, end: datetime) -> tuple[int, latency.Histogram, latency.Histogram]:
    """(count, wait histogram, run histogram) of the jobs completed in [start, end): a range
    of the (status, completed_at) index."""
    waits: latency.Histogram = {}
    runs: latency.Histogram = {}
    n = 0
    rows = (Job.objects.filter(status=JobStatus.COMPLETED, completed_at__gte=start,
                               completed_at__lt=end)
            .order_by().values_list("run_at", "started_at", "completed_at")
            .iterator(chunk_size=5000))
    for run_at, started, completed in rows:
        if started is None or completed is None:
            continue
        n += 1
        w = latency.bucket((started - run_at).total_seconds())
        r = latency.bucket((completed - started).total_seconds())
        waits[w] = waits.get(w, 0) + 1
        runs[r] = runs.get(r, 0) + 1
    return n, waits, runs


def roll(minutes: Iterable[datetime], now: datetime) -> int:
    """Write (or rewrite) the rollup of these minutes, rolled at ``now``; returns how many."""
    rows = []
    for minute in minutes:
        n, waits, runs = measure(minute, minute + MINUTE)
        rows.append(LatencyMinute(minute=minute, completed=n, wait=latency.to_json(waits),
                                  run=latency.to_json(runs), rolled_at=now))
    if rows:
        LatencyMinute.objects.bulk_create(
            rows, update_conflicts=True, unique_fields=["minute"],
            update_fields=["completed", "wait", "run", "rolled_at"])
    return len(rows)


def due_minutes(now: datetime) -> list[datetime]:
    """The minutes a pass at ``now`` rolls, newest first, at most ``PER_PASS``: those of the
    last ``HORIZON`` that closed ``GRACE`` ago and have no rollup, and those whose last roll
    is due (``REVISIT`` after they closed) but was not done after that moment."""
    have = dict(LatencyMinute.objects.filter(minute__gte=now - HORIZON)
                .values_list("minute", "rolled_at"))
    due = []
    for minute in reversed(closed_minutes(now - HORIZON, now - GRACE - MINUTE
                                          + timedelta(microseconds=1))):
        rolled = have.get(minute)
        last = minute + MINUTE + REVISIT
        if rolled is None or (now >= last and rolled < last):
            due.append(minute)
            if len(due) == PER_PASS:
                break
    return due


def roll_due(now: datetime) -> int:
    """One pass: roll the due minutes, delete rollups past ``KEEP``."""
    done = roll(due_minutes(now), now)
    LatencyMinute.objects.filter(minute__lt=now - KEEP).delete()
    return done


def recent_start(now: datetime) -> datetime:
    """Minutes from here on may not be rolled yet (or are rolled again): the dashboard reads
    their jobs live when they have no rollup. Older minutes without one are shown empty."""
    return floor_minute(now - GRACE - MINUTE - REVISIT)


def histograms(start: datetime, end: datetime, now: datetime
               ) -> dict[datetime, tuple[int, latency.Histogram, latency.Histogram]]:
    """Per minute of [start, end): (completed, wait, run) from the rollups, and, for the
    recent minutes with none yet, from the jobs (a few minutes' rows at most)."""
    out = {r.minute: (r.completed, latency.merge([r.wait]), latency.merge([r.run]))
           for r in LatencyMinute.objects.filter(minute__gte=start, minute__lt=end)}
    # Up to now: a window's end is the next bucket boundary, up to an hour ahead.
    for minute in closed_minutes(max(start, recent_start(now)), min(end, now)):
        if minute not in out:
            out[minute] = measure(minute, minute + MINUTE)
    return out
