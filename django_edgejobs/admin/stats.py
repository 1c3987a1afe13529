"""What the dashboard shows, read with queries whose cost is bounded by a time window or by
the live backlog, never by the size of the job table (docs/howto/admin.md, "How fast").

- Active jobs (pending, waiting, processing) are counted in full: through the partial claim
  index and the (status, completed_at) index they cost what the backlog holds, not what
  history holds.
- Finished jobs (the hour's per queue and per type, the throughput charts, the 1 h and 24 h
  cards) and the wait and run times come from every job: the per-minute rollups kept by the
  rollup service (``services/rollup.py``: counts per queue, type and status, latency
  histograms), read once for the day and summed per bucket; the last few minutes, not
  rolled yet, are read from the jobs. The windows are whole minutes (the hour: the 59 minutes
  before this one and this one so far; the day: 24 whole hours, this one so far), so every
  card is the sum of its chart.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from django.db.models import Count, Min

from .. import latency as hist
from ..conf import get_settings
from ..models import CronSchedule, Job, Queue, Worker
from ..models.job import ACTIVE_STATUSES, FINISHED_STATUSES, JobStatus
from ..services import rollup
from ..store import get_store
from .filters import FINISHED_WINDOWS, OVERDUE_AFTER, floor_time

MAX_WORKERS = 50
MAX_SCHEDULES = 500
STATUS_COLUMNS = [s.value for s in (*ACTIVE_STATUSES, *FINISHED_STATUSES)]
#: Columns counted over the last hour only.
FINISHED_COLUMNS = [s.value for s in FINISHED_STATUSES]


@dataclass
class Buckets:
    """Consecutive time buckets ending at ``end``."""

    end: datetime
    size: timedelta
    count: int

    @property
    def start(self) -> datetime:
        return self.end - self.size * self.count

    def edges(self) -> list[tuple[datetime, datetime]]:
        start = self.start
        return [(start + self.size * i, start + self.size * (i + 1)) for i in range(self.count)]


def _window(name: str, now: datetime) -> Buckets:
    """A dashboard window (``filters.FINISHED_WINDOWS``, which the cards' links filter by)
    as buckets; the last one is the current, partial one."""
    size, count = FINISHED_WINDOWS[name]
    return Buckets(floor_time(now, size) + size, size, count)


def hour_buckets(now: datetime) -> Buckets:
    """60 one-minute buckets; the last one is the current, partial minute."""
    return _window("1h", now)


def day_buckets(now: datetime) -> Buckets:
    """24 one-hour buckets; the last one is the current, partial hour."""
    return _window("24h", now)


def day_minutes(now: datetime) -> dict[datetime, rollup.Minute]:
    """The per-minute rollups the dashboard reads: the day chart's window (which covers the
    hour's)."""
    day = day_buckets(now)
    return rollup.minutes(day.start, day.end, now)


def throughput(buckets: Buckets, minutes: dict[datetime, rollup.Minute] | None = None,
               now: datetime | None = None) -> dict[str, list[int]]:
    """Jobs completed and failed per bucket, from the per-minute rollups (``minutes``: read
    already for a window that covers ``buckets``)."""
    if minutes is None:
        minutes = rollup.minutes(buckets.start, buckets.end, now or get_store().db_now())
    out: dict[str, list[int]] = {JobStatus.COMPLETED.value: [0] * buckets.count,
                                 JobStatus.FAILED.value: [0] * buckets.count}
    size = buckets.size.total_seconds()
    for minute, got in minutes.items():
        index = int((minute - buckets.start).total_seconds() // size)
        if 0 <= index < buckets.count:
            for done, failed, _ in got.counts.values():
                out[JobStatus.COMPLETED.value][index] += done
                out[JobStatus.FAILED.value][index] += failed
    return out


def finished_in(minutes: dict[datetime, rollup.Minute], start: datetime,
                key: int) -> dict[tuple[str, str], int]:
    """Jobs finished from ``start`` on, per (queue or type, status): ``key`` 0 groups by
    queue, 1 by type."""
    out: dict[tuple[str, str], int] = defaultdict(int)
    for minute, got in minutes.items():
        if minute < start:
            continue
        for pair, values in got.counts.items():
            for status, n in zip(FINISHED_COLUMNS, values, strict=True):
                if n:
                    out[(pair[key], status)] += n
    return out


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (``p`` in 0..100) of unsorted values; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, int(-(-p * len(ordered) // 100)))  # ceil(p/100 * n)
    return ordered[min(rank, len(ordered)) - 1]


def latency(buckets: Buckets, now: datetime | None = None,
            minutes: dict[datetime, Any] | None = None) -> dict[str, list[float | None]]:
    """p50/p95 of wait (due -> handler began) and run (handler began -> ended) seconds per
    bucket, from every job completed in it: the per-minute rollups (``services/rollup.py``)
    merged, and the jobs of the last minutes not rolled yet. ``minutes``: those histograms,
    already read for a window that covers ``buckets``."""
    now = now or get_store().db_now()
    if minutes is None:
        minutes = rollup.minutes(buckets.start, buckets.end, now)
    out: dict[str, list[float | None]] = defaultdict(list)
    for lo, hi in buckets.edges():
        inside = [v for m, v in minutes.items() if lo <= m < hi]
        for name, merged in (("wait", hist.merge(v.wait for v in inside)),
                             ("run", hist.merge(v.run for v in inside))):
            out[f"{name}_p50"].append(hist.percentile(merged, 50))
            out[f"{name}_p95"].append(hist.percentile(merged, 95))
    return dict(out)


@dataclass
class QueueRow:
    queue: str
    counts: dict[str, int] = field(default_factory=dict)
    due: int = 0
    oldest_due: datetime | None = None
    paused: bool = False


def queues(now: datetime, minutes: dict[datetime, rollup.Minute] | None = None
           ) -> list[QueueRow]:
    """Per queue: active jobs by status, due pending jobs (not past their ``expires_at``)
    and the oldest due time, jobs finished in the hour by status (from the rollups), and
    whether it is paused (a paused queue is listed even with no jobs)."""
    rows: dict[str, QueueRow] = {}

    def row(name: str) -> QueueRow:
        return rows.setdefault(name, QueueRow(name))

    for name in get_settings().QUEUES:
        row(name)
    for item in (Job.objects.filter(status__in=ACTIVE_STATUSES).order_by()
                 .values("queue", "status").annotate(n=Count("pk"))):
        row(item["queue"]).counts[item["status"]] = item["n"]
    for due in (Job.objects.due(now=now).order_by()  # not past expires_at: claimable
                .values("queue").annotate(n=Count("pk"), oldest=Min("run_at"))):
        r = row(due["queue"])
        r.due, r.oldest_due = due["n"], due["oldest"]
    if minutes is None:
        minutes = day_minutes(now)
    for (queue, status), n in finished_in(minutes, hour_buckets(now).start, 0).items():
        row(queue).counts[status] = n
    for name in Queue.objects.filter(paused=True).values_list("name", flat=True):
        row(name).paused = True
    return sorted(rows.values(), key=lambda r: r.queue)


#: Job types the dashboard's per-type table shows (those with failures first).
MAX_TYPES = 50


@dataclass
class TypeRow:
    type: str
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def failure_rate(self) -> float | None:
        return failure_rate(self.counts)


def types(now: datetime, minutes: dict[datetime, rollup.Minute] | None = None
          ) -> list[TypeRow]:
    """Per job type: active jobs by status (the backlog) and jobs finished in the hour by
    status (from the rollups); the types with the most failures first, then the busiest."""
    rows: dict[str, TypeRow] = {}
    for item in (Job.objects.filter(status__in=ACTIVE_STATUSES).order_by()
                 .values("type", "status").annotate(n=Count("pk"))):
        rows.setdefault(item["type"], TypeRow(item["type"])).counts[item["status"]] = item["n"]
    if minutes is None:
        minutes = day_minutes(now)
    for (type_, status), n in finished_in(minutes, hour_buckets(now).start, 1).items():
        rows.setdefault(type_, TypeRow(type_)).counts[status] = n
    ordered = sorted(rows.values(), key=lambda r: (-r.counts.get(JobStatus.FAILED, 0),
                                                   -sum(r.counts.values()), r.type))
    return ordered[:MAX_TYPES]


def failure_rate(totals: dict[str, int]) -> float | None:
    done = totals.get(JobStatus.COMPLETED, 0) + totals.get(JobStatus.FAILED, 0)
    return None if done == 0 else totals.get(JobStatus.FAILED, 0) / done


@dataclass
class WorkerRow:
    worker: Worker
    alive: bool
    heartbeat_age: timedelta
    running: list[dict[str, Any]]
    running_count: int


def workers(now: datetime, per_worker: int = 5) -> list[WorkerRow]:
    """Workers not marked stopped, alive ones first, with the jobs they hold."""
    timeout = timedelta(seconds=get_settings().WORKER_TIMEOUT)
    found = list(Worker.objects.filter(stopped_at__isnull=True)
                 .order_by("-last_heartbeat")[:MAX_WORKERS])
    running: dict[str, list[dict[str, Any]]] = defaultdict(list)
    counts: dict[str, int] = {}
    if found:
        ids = [w.id for w in found]
        for item in (Job.objects.filter(status=JobStatus.PROCESSING, lease_owner__in=ids)
                     .order_by().values("lease_owner").annotate(n=Count("pk"))):
            counts[item["lease_owner"]] = item["n"]
        for job in (Job.objects.filter(status=JobStatus.PROCESSING, lease_owner__in=ids)
                    .order_by("started_at")
                    .values("id", "type", "lease_owner", "started_at", "progress")
                    [:per_worker * len(ids)]):
            if len(running[job["lease_owner"]]) < per_worker:
                running[job["lease_owner"]].append(dict(job))
    return [WorkerRow(w, w.last_heartbeat >= now - timeout, now - w.last_heartbeat,
                      running[w.id], counts.get(w.id, 0)) for w in found]


@dataclass
class CronRun:
    schedule: CronSchedule
    at: datetime
    error: str = ""


def next_cron_runs(now: datetime, limit: int = 10) -> list[CronRun]:
    runs = []
    for schedule in CronSchedule.objects.filter(enabled=True).order_by("name")[:MAX_SCHEDULES]:
        try:
            at = schedule.times.next(now)
        except ValueError as exc:  # an expression that a newer croniter refuses
            runs.append(CronRun(schedule, now, str(exc)))
            continue
        runs.append(CronRun(schedule, at.astimezone(schedule.times.zone)))
    runs.sort(key=lambda r: r.at)
    return runs[:limit]


def collect(now: datetime) -> dict[str, Any]:
    """Everything the dashboard shows, as of ``now`` (the database's clock)."""
    settings = get_settings()
    # One read of the day's per-minute rollups serves the charts and the finished counts.
    minutes = day_minutes(now)
    queue_rows = queues(now, minutes)
    due = sum(r.due for r in queue_rows)
    oldest = min((r.oldest_due for r in queue_rows if r.oldest_due), default=None)
    hour, day = hour_buckets(now), day_buckets(now)
    throughput_hour, throughput_day = throughput(hour, minutes), throughput(day, minutes)
    # The windows' totals: the per-queue counts of the hour, and the 24 hourly buckets of
    # the day chart (each card is the sum of its chart).
    totals_1h = {status: sum(r.counts.get(status, 0) for r in queue_rows)
                 for status in FINISHED_COLUMNS}
    totals_24h = {status: sum(throughput_day[status])
                  for status in (JobStatus.COMPLETED, JobStatus.FAILED)}
    latency_hour = Buckets(hour.end, timedelta(minutes=5), 12)
    worker_rows = workers(now)
    return {
        "now": now,
        "queues": queue_rows,
        "types": types(now, minutes),
        "totals": {status: sum(r.counts.get(status, 0) for r in queue_rows)
                   for status in STATUS_COLUMNS},
        "due": due,
        "oldest_due": oldest,
        "oldest_due_age": (now - oldest) if oldest else None,
        "totals_1h": totals_1h,
        "totals_24h": totals_24h,
        "failure_rate_1h": failure_rate(totals_1h),
        "failure_rate_24h": failure_rate(cast(dict[str, int], totals_24h)),
        "stuck": Job.objects.stuck(settings.WORKER_TIMEOUT, now=now).count(),
        "overdue": Job.objects.overdue(OVERDUE_AFTER, now=now).count(),
        "hour": hour,
        "day": day,
        "throughput_hour": throughput_hour,
        "throughput_day": throughput_day,
        "latency_buckets": latency_hour,
        "latency_hour": latency(latency_hour, now, minutes),
        "latency_day": latency(day, now, minutes),
        "workers": worker_rows,
        "workers_alive": sum(1 for w in worker_rows if w.alive),
        "cron": next_cron_runs(now),
    }
