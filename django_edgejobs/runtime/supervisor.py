"""The supervisor: reclaims jobs of silent workers and prunes history. Safe in many processes."""

from __future__ import annotations

import logging
import time
from typing import Any

from .. import signals
from ..conf import get_settings
from ..models import Job, JobStatus
from ..services.tokens import expire_timed_out_tokens
from ..store import get_store

logger = logging.getLogger("django_edgejobs.supervisor")


def reclaim_stuck_jobs(worker_timeout: float | None = None) -> int:
    """Give back the jobs of workers silent for ``WORKER_TIMEOUT``; returns how many."""
    timeout = get_settings().WORKER_TIMEOUT if worker_timeout is None else worker_timeout
    return _reclaim(lambda store: store.reclaim(timeout))


def reclaim_orphans(worker_id: str) -> int:
    """Give back what an earlier process with this worker id left processing (it is gone,
    whatever the heartbeat of a new process with the same id says)."""
    return _reclaim(lambda store: store.reclaim(0, owner=worker_id))


def resume_due_waits() -> int:
    """Put jobs whose time wait is over back to pending (the supervisor does this)."""
    return get_store().resume_due()


def _reclaim(step) -> int:
    total = 0
    while True:
        rows = step(get_store())
        total += len(rows)
        failed = [job_id for job_id, status in rows if status == JobStatus.FAILED]
        if failed and signals.job_failed.has_listeners():
            for job in Job.objects.filter(id__in=failed):
                signals.job_failed.send_robust(sender=Job, job=job, error=job.last_error)
        for job_id, status in rows:
            logger.warning("job=%s reclaimed; now %s", job_id, status)
        if len(rows) < 500:
            return total


def cancel_expired_jobs() -> int:
    """Cancel pending jobs whose ``expires`` moment has passed; returns how many."""
    total = 0
    while True:
        ids = get_store().expire_jobs()
        total += len(ids)
        if ids and signals.job_cancelled.has_listeners():
            for job in Job.objects.filter(id__in=ids):
                signals.job_cancelled.send(sender=Job, job=job)
        for job_id in ids:
            logger.info("job=%s expired before it could start; cancelled", job_id)
        if len(ids) < 500:
            return total


def cleanup_old_jobs(days: float | None = None) -> int:
    """Delete completed, failed and cancelled jobs finished more than ``days`` ago."""
    return get_store().prune_jobs(get_settings().KEEP_FINISHED_DAYS if days is None else days)


def cleanup_old_job_events(days: float | None = None) -> int:
    """Delete job events older than ``days``."""
    return get_store().prune_events(get_settings().KEEP_EVENTS_DAYS if days is None else days)


class Supervisor:
    """One pass reclaims stuck jobs, resumes due waits and expires timed-out tokens; pruning
    runs at most every ``PRUNE_INTERVAL`` seconds."""

    def __init__(self, prune_interval: float | None = None):
        self.prune_interval = prune_interval
        self._last_prune: float | None = None

    def run_once(self) -> dict[str, Any]:
        done: dict[str, Any] = {"reclaimed": reclaim_stuck_jobs(),
                                "resumed": resume_due_waits(),
                                "expired": cancel_expired_jobs(),
                                "tokens_expired": expire_timed_out_tokens()}
        interval = (get_settings().PRUNE_INTERVAL if self.prune_interval is None
                    else self.prune_interval)
        now = time.monotonic()
        if self._last_prune is None or now - self._last_prune >= interval:
            self._last_prune = now
            done["jobs_pruned"] = cleanup_old_jobs()
            done["events_pruned"] = cleanup_old_job_events()
            done["workers_pruned"] = get_store().prune_workers(older_than=86400)
        return done
