"""The rescuer: gives back the jobs of workers that stopped heart-beating."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

from ... import signals
from ...conf import get_settings
from ...models import Job, JobStatus
from ...store import Store, get_store
from ..service import Service

logger = logging.getLogger("django_edgejobs.supervisor")

#: The store reclaims at most this many jobs a call; a full batch means: call again.
BATCH = 500


def reclaim_stuck_jobs(worker_timeout: float | None = None) -> int:
    """Give back the jobs of workers silent for ``WORKER_TIMEOUT``: back to ``pending``, or
    ``failed`` when no attempt is left (event ``reclaimed``). Returns how many."""
    timeout = get_settings().WORKER_TIMEOUT if worker_timeout is None else worker_timeout
    return _reclaim(lambda store: store.reclaim(timeout))


def reclaim_orphans(worker_id: str) -> int:
    """Give back what an earlier process with this worker id left processing (it is gone,
    whatever the heartbeat of a new process with the same id says)."""
    return _reclaim(lambda store: store.reclaim(0, owner=worker_id))


def _reclaim(step: Callable[[Store], list[tuple[uuid.UUID, str]]]) -> int:
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
        if len(rows) < BATCH:
            return total


class Rescuer(Service):
    """Every ``SUPERVISOR_INTERVAL``: ``reclaim_stuck_jobs()``."""

    name = "rescuer"

    def __init__(self, worker_timeout: float | None = None):
        self.worker_timeout = worker_timeout

    @property
    def interval(self) -> float:
        return get_settings().SUPERVISOR_INTERVAL

    def run_once(self) -> int:
        return reclaim_stuck_jobs(self.worker_timeout)
