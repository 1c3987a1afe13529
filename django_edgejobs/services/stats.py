"""Numbers about the queue for people and monitoring: counts, backlog age, live workers."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, Min

from ..conf import get_settings
from ..models import Job, Queue, Worker
from ..models.clock import Now
from ..store import get_store

#: The count keys of every queue in ``queue_stats()``, in a stable order.
COUNT_KEYS = ("pending", "due", "waiting", "processing", "completed", "failed", "cancelled")


def _empty() -> dict[str, Any]:
    return {**dict.fromkeys(COUNT_KEYS, 0), "oldest_due_age_seconds": None, "paused": False}


def queue_stats() -> dict[str, Any]:
    """Counts per queue and status, how long the oldest due job has waited, live workers.

    ``due`` counts pending jobs whose run time has come (a backlog when it stays high);
    ``oldest_due_age_seconds`` is how long the oldest of them is overdue, on the database's
    clock. ``paused``: no worker claims from the queue (``pause_queue``); a paused queue is
    listed even with no jobs. A worker is alive when it heart-beat within ``WORKER_TIMEOUT``
    and has not stopped.
    """
    store = get_store()
    jobs = Job.objects.using(store.alias)
    now: datetime = store.db_now()
    queues: dict[str, dict[str, Any]] = {}
    for row in jobs.values("queue", "status").annotate(n=Count("id")).order_by():
        queues.setdefault(row["queue"], _empty())[row["status"]] = row["n"]
    for due in jobs.due().values("queue").annotate(n=Count("id"), oldest=Min("run_at")).order_by():
        entry = queues.setdefault(due["queue"], _empty())
        entry["due"] = due["n"]
        entry["oldest_due_age_seconds"] = max((now - due["oldest"]).total_seconds(), 0.0)
    for name in Queue.objects.using(store.alias).filter(paused=True).values_list("name",
                                                                                flat=True):
        queues.setdefault(name, _empty())["paused"] = True
    totals = _empty()
    del totals["paused"]
    for entry in queues.values():
        for key in COUNT_KEYS:
            totals[key] += entry[key]
        age = entry["oldest_due_age_seconds"]
        if age is not None and (totals["oldest_due_age_seconds"] is None
                                or age > totals["oldest_due_age_seconds"]):
            totals["oldest_due_age_seconds"] = age
    threshold = Now() - timedelta(seconds=get_settings().WORKER_TIMEOUT)
    workers = [
        {"id": w.id, "hostname": w.hostname, "pid": w.pid, "queues": list(w.queues),
         "concurrency": w.concurrency, "started_at": w.started_at,
         "last_heartbeat": w.last_heartbeat, "jobs_done": w.jobs_done}
        for w in Worker.objects.using(store.alias)
        .filter(last_heartbeat__gte=threshold, stopped_at__isnull=True).order_by("id")
    ]
    return {"at": now, "queues": dict(sorted(queues.items())), "totals": totals,
            "workers_alive": len(workers), "workers": workers}


def count_finished_jobs(older_than_days: float) -> int:
    """How many completed, failed or cancelled jobs finished more than this many days ago
    (what ``cleanup_old_jobs(days)`` would delete now)."""
    return Job.objects.using(get_store().alias).finished_before(older_than_days).count()
