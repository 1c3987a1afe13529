"""The per-minute rollup: histograms of the completed jobs' wait and run times
(``LatencyMinute``) and the finished jobs counted per queue, type and status
(``FinishedMinute``), so the dashboard's percentiles, throughput and finished counts come
from every job at a cost set by the window (its minutes, its queues and types), not by the
table or by how many jobs the window holds.

A minute is rolled twice: once it has closed (plus ``GRACE``), and a last time ``REVISIT``
after: a completion is stamped with its handler's end and may be written a moment later,
into a minute already rolled. A completion written later still (an outage of the database
longer than that) is left out of the rollup. Each roll reads the minute's finished jobs once
(at 10,000 jobs/s, 600,000 rows twice a minute, about 3% of one core). Rolling is idempotent
(an upsert of the whole minute), so any number of processes may do it at once."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import transaction

from .. import latency
from ..models import FinishedMinute, Job, JobStatus, LatencyMinute
from ..store import get_store

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


#: A minute's finished jobs per (queue, type): [completed, failed, cancelled].
Counts = dict[tuple[str, str], list[int]]
#: Where each finished status is counted in a ``Counts`` value.
COLUMN: dict[str, int] = {JobStatus.COMPLETED: 0, JobStatus.FAILED: 1, JobStatus.CANCELLED: 2}


@dataclass(slots=True)
class Minute:
    """What one minute's finished jobs add up to."""

    #: The jobs the histograms hold (completed, with both handler times).
    completed: int = 0
    wait: latency.Histogram = field(default_factory=dict)
    run: latency.Histogram = field(default_factory=dict)
    counts: Counts = field(default_factory=dict)


def measure_range(start: datetime, end: datetime) -> dict[datetime, Minute]:
    """Each minute of [start, end) (minute-aligned bounds), from the jobs that finished in
    it: one read, three ranges of the (status, completed_at) index."""
    out: dict[datetime, Minute] = {}
    rows = (Job.objects.filter(status__in=list(COLUMN), completed_at__gte=start,
                               completed_at__lt=end)
            .order_by().values_list("status", "queue", "type", "run_at", "started_at",
                                    "completed_at")
            .iterator(chunk_size=5000))
    for status, queue, type_, run_at, started, completed in rows:
        if completed is None:  # the filter guarantees it; the type does not
            continue
        minute = floor_minute(completed)
        got = out.get(minute)
        if got is None:
            got = out[minute] = Minute()
        counted = got.counts.get((queue, type_))
        if counted is None:
            counted = got.counts[(queue, type_)] = [0, 0, 0]
        counted[COLUMN[status]] += 1
        if status != JobStatus.COMPLETED or started is None:
            continue
        w = latency.bucket((started - run_at).total_seconds())
        r = latency.bucket((completed - started).total_seconds())
        got.wait[w] = got.wait.get(w, 0) + 1
        got.run[r] = got.run.get(r, 0) + 1
        got.completed += 1
    return out


def roll(minutes: Iterable[datetime], now: datetime) -> int:
    """Write (or rewrite) the rollup of these minutes, rolled at ``now``; returns how many.
    A minute's ``LatencyMinute`` and its ``FinishedMinute`` rows are written together, as
    upserts: a (queue, type) counted by an earlier roll and gone since (its jobs retried or
    deleted) is written as zeros, so concurrent rolls of a minute never collide."""
    minutes = list(minutes)
    if not minutes:
        return 0
    before = set(FinishedMinute.objects.filter(minute__in=minutes)
                 .values_list("minute", "queue", "type"))
    measured: dict[datetime, Minute] = {}
    for lo, hi in _runs(sorted(minutes)):  # one read per run of consecutive minutes
        measured.update(measure_range(lo, hi))
    rows, counts = [], []
    for minute in minutes:
        got = measured.get(minute) or Minute()
        rows.append(LatencyMinute(minute=minute, completed=got.completed,
                                  wait=latency.to_json(got.wait),
                                  run=latency.to_json(got.run), rolled_at=now))
        for queue, type_ in {*got.counts, *((q, t) for m, q, t in before if m == minute)}:
            done, failed, cancelled = got.counts.get((queue, type_), (0, 0, 0))
            counts.append(FinishedMinute(minute=minute, queue=queue, type=type_,
                                         completed=done, failed=failed, cancelled=cancelled))
    with transaction.atomic(using=get_store().alias):
        FinishedMinute.objects.bulk_create(
            counts, batch_size=500, update_conflicts=True,
            unique_fields=["minute", "queue", "type"],
            update_fields=["completed", "failed", "cancelled"])
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
    FinishedMinute.objects.filter(minute__lt=now - KEEP).delete()
    return done


def recent_start(now: datetime) -> datetime:
    """Minutes from here on may not be rolled yet (or are rolled again)."""
    return floor_minute(now - GRACE - MINUTE - REVISIT)


def minutes(start: datetime, end: datetime, now: datetime) -> dict[datetime, Minute]:
    """Per minute of [start, end) up to ``now``: from the rollups, and, for the minutes
    with none, from the jobs, in one read per run of consecutive such minutes. With workers
    running that is the last few minutes (the rollup service rolls the rest); with none
    running, or on a fresh install while the service fills the day, it is more."""
    rolled = {r.minute: r for r in LatencyMinute.objects.filter(minute__gte=start,
                                                                minute__lt=min(end, now))}
    counts: dict[datetime, Counts] = {}
    for row in FinishedMinute.objects.filter(minute__gte=start,
                                             minute__lt=min(end, now)).order_by():
        counts.setdefault(row.minute, {})[(row.queue, row.type)] = [
            row.completed, row.failed, row.cancelled]
    out = {m: Minute(r.completed, latency.merge([r.wait]), latency.merge([r.run]),
                     counts.get(m, {}))
           for m, r in rolled.items()}
    # Up to now: a window's end is the next bucket boundary, up to an hour ahead.
    missing = [m for m in closed_minutes(start, min(end, now)) if m not in rolled]
    for lo, hi in _runs(missing):
        found = measure_range(lo, hi)
        for minute in closed_minutes(lo, hi):
            out[minute] = found.get(minute) or Minute()
    return out


def _runs(minutes: list[datetime]) -> list[tuple[datetime, datetime]]:
    """Consecutive minutes (sorted) as [start, end) ranges."""
    runs: list[tuple[datetime, datetime]] = []
    for minute in minutes:
        if runs and runs[-1][1] == minute:
            runs[-1] = (runs[-1][0], minute + MINUTE)
        else:
            runs.append((minute, minute + MINUTE))
    return runs
