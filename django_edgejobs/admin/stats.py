"""What the dashboard shows, read with queries whose cost is bounded by a time window or by
the live backlog, never by the size of the job table (docs/howto/admin.md, "How fast").

- Active jobs (pending, waiting, processing) are counted in full: through the partial claim
  index and the (status, completed_at) index they cost what the backlog holds, not what
  history holds.
- Finished jobs are counted over windows (the last hour per queue; the last 24 hours from
  the hourly chart) by range scans of the (status, completed_at) index.
- Throughput is one GROUP BY per window over the same index (``Store.finished_histogram``,
  whose bucket arithmetic is vendor SQL).
- Wait and run times come from every completed job: per-minute histograms kept by the
  rollup service (``services/rollup.py``), merged per bucket; the last few minutes, not
  rolled yet, are read from the jobs.
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
from .filters import OVERDUE_AFTER

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


def floor_time(when: datetime, size: timedelta) -> datetime:
    seconds = int(size.total_seconds())
    epoch = int(when.timestamp())
    return when - timedelta(seconds=epoch % seconds, microseconds=when.microsecond)


def hour_buckets(now: datetime) -> Buckets:
    """60 one-minute buckets; the last one is the current, partial minute."""
    size = timedelta(minutes=1)
    return Buckets(floor_time(now, size) + size, size, 60)


def day_buckets(now: datetime) -> Buckets:
    size = timedelta(hours=1)
    return Buckets(floor_time(now, size) + size, size, 24)


def throughput(buckets: Buckets) -> dict[str, list[int]]:
    """Jobs completed and failed per bucket: one index-only query (the store's SQL)."""
    return get_store().finished_histogram(buckets.start, int(buckets.size.total_seconds()),
                                          buckets.count)


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
        minutes = rollup.histograms(buckets.start, buckets.end, now)
    out: dict[str, list[float | None]] = defaultdict(list)
    for lo, hi in buckets.edges():
        inside = [v for m, v in minutes.items() if lo <= m < hi]
        for name, merged in (("wait", hist.merge(w for _, w, _ in inside)),
                             ("run", hist.merge(r for _, _, r in inside))):
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


def queues(now: datetime) -> list[QueueRow]:
    """Per queue: active jobs by status, due pending jobs (not past their ``expires_at``)
    and the oldest due time, jobs finished in the last hour by status, and whether it is
    paused (a paused queue is listed even with no jobs)."""
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
    for item in (Job.objects.filter(status__in=FINISHED_STATUSES,
                                    completed_at__gte=now - timedelta(hours=1)).order_by()
                 .values("queue", "status").annotate(n=Count("pk"))):
        row(item["queue"]).counts[item["status"]] = item["n"]
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


def types(now: datetime) -> list[TypeRow]:
    """Per job type: active jobs by status (the backlog) and jobs finished in the last hour by
    status; the types with the most failures first, then the busiest."""
    rows: dict[str, TypeRow] = {}
    for item in (Job.objects.filter(status__in=ACTIVE_STATUSES).order_by()
                 .values("type", "status").annotate(n=Count("pk"))):
        rows.setdefault(item["type"], TypeRow(item["type"])).counts[item["status"]] = item["n"]
    for item in (Job.objects.filter(status__in=FINISHED_STATUSES,
                                    completed_at__gte=now - timedelta(hours=1)).order_by()
                 .values("type", "status").annotate(n=Count("pk"))):
        rows.setdefault(item["type"], TypeRow(item["type"])).counts[item["status"]] = item["n"]
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
    queue_rows = queues(now)
    due = sum(r.due for r in queue_rows)
    oldest = min((r.oldest_due for r in queue_rows if r.oldest_due), default=None)
    hour, day = hour_buckets(now), day_buckets(now)
    throughput_hour, throughput_day = throughput(hour), throughput(day)
    # The windows' totals come from queries made anyway: the per-queue counts of the last
    # hour, and the 24 hourly buckets of the day chart (so the card matches the chart).
    totals_1h = {status: sum(r.counts.get(status, 0) for r in queue_rows)
                 for status in FINISHED_COLUMNS}
    totals_24h = {status: sum(throughput_day[status])
                  for status in (JobStatus.COMPLETED, JobStatus.FAILED)}
    latency_hour = Buckets(hour.end, timedelta(minutes=5), 12)
    # One read of the day's per-minute latency serves both charts (the day covers the hour).
    minutes = rollup.histograms(day.start, day.end, now)
    worker_rows = workers(now)
    return {
        "now": now,
        "queues": queue_rows,
        "types": types(now),
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
