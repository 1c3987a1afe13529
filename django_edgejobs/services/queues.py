"""Queues as operators see them: pause, resume, and one line of numbers each.

A paused queue keeps accepting jobs; no claim takes from it once the pause has committed (the
claim reads the ``Queue`` row in its own statement). Jobs already running finish. A resume
wakes the queue's listening workers (PostgreSQL ``NOTIFY``; SQLite workers see the commit).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from django.db import IntegrityError, transaction

from ..models import Queue
from ..models.clock import Now
from ..store import get_store
from .stats import queue_stats
from .validation import validate_queue

logger = logging.getLogger("django_edgejobs.queues")


@dataclass(frozen=True)
class QueueInfo:
    """One queue: whether it is paused, and its jobs by status.

    ``due``: pending jobs whose run time has come (a paused queue's backlog grows here);
    ``oldest_due_age``: seconds the oldest of them is overdue, on the database's clock, or
    None when nothing is due."""

    name: str
    paused: bool
    pending: int
    due: int
    processing: int
    failed: int
    oldest_due_age: float | None
    waiting: int = 0
    completed: int = 0
    cancelled: int = 0
    paused_at: datetime | None = None


def pause_queue(queue: str) -> bool:
    """Stop every worker from claiming jobs of ``queue`` (persisted; jobs still enqueue and
    running ones finish). True if it was running, False if it was already paused."""
    name = validate_queue(queue, where="pause_queue")
    alias = get_store().alias
    rows = Queue.objects.using(alias)
    with transaction.atomic(using=alias):
        changed = rows.filter(name=name, paused=False).update(paused=True, paused_at=Now())
        if not changed:
            try:
                with transaction.atomic(using=alias):
                    rows.create(name=name, paused=True, paused_at=Now())
                changed = 1
            except IntegrityError:  # the row exists, paused (by this call's rival, perhaps)
                changed = 0
    if changed:
        logger.info("queue %r paused", name)
    return bool(changed)


def resume_queue(queue: str) -> bool:
    """Let workers claim jobs of ``queue`` again and wake those listening to it. True if it
    was paused."""
    name = validate_queue(queue, where="resume_queue")
    store = get_store()
    with transaction.atomic(using=store.alias):
        changed = Queue.objects.using(store.alias).filter(name=name, paused=True).update(
            paused=False, paused_at=None)
        if changed and store.supports_notify:
            store.notify([name])
    if changed:
        logger.info("queue %r resumed", name)
    return bool(changed)


def list_queues() -> list[QueueInfo]:
    """Every queue that has jobs, or was ever paused or held a limited job, by name."""
    stats = queue_stats()["queues"]
    rows = dict(Queue.objects.using(get_store().alias).values_list("name", "paused_at"))
    out = []
    for name in sorted(set(stats) | set(rows)):
        entry = stats.get(name, {})
        out.append(QueueInfo(
            name=name, paused=entry.get("paused", False), paused_at=rows.get(name),
            pending=entry.get("pending", 0), due=entry.get("due", 0),
            processing=entry.get("processing", 0), failed=entry.get("failed", 0),
            oldest_due_age=entry.get("oldest_due_age_seconds"),
            waiting=entry.get("waiting", 0), completed=entry.get("completed", 0),
            cancelled=entry.get("cancelled", 0),
        ))
    return out
