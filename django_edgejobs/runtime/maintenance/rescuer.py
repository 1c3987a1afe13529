"""The rescuer: gives back the jobs of workers that stopped heart-beating."""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Callable

from django.db import DatabaseError

from ... import signals
from ...conf import get_settings
from ...models import Job, JobStatus
from ...store import Store, get_store
from ..service import SupervisorService

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
        store = get_store()
        rows = step(store)
        total += len(rows)
        failed = [job_id for job_id, status in rows if status == JobStatus.FAILED]
        store.settle(failed)  # their dependents: cancelled, or run anyway
        if failed and signals.job_failed.has_listeners():
            for job in Job.objects.filter(id__in=failed):
                signals.job_failed.send_robust(sender=Job, job=job, error=job.last_error)
        for job_id, status in rows:
            logger.warning("job=%s reclaimed; now %s", job_id, status)
        if len(rows) < BATCH:
            return total


class Rescuer(SupervisorService):
    """Every ``SUPERVISOR_INTERVAL``: ``reclaim_stuck_jobs()``, unless it cannot tell a silent
    worker from its own silence.

    A worker's heartbeat goes stale when it dies, and also when the database cannot be reached:
    after an outage longer than ``WORKER_TIMEOUT`` every worker looks dead, live ones included,
    until each beats again. So once a pass of the rescuer has failed on the database, it
    reclaims nothing until it has been back in touch for ``WORKER_TIMEOUT`` (it checks with
    one cheap query a pass meanwhile): the time a live worker always has to beat. The jobs of
    a worker that really died are reclaimed then, that much later. A rescuer that never
    failed (a new one, ``Supervisor().run_once()`` from a project's own scheduler) reclaims at
    once, as ``reclaim_stuck_jobs()`` does. See docs/explanation/decisions.md."""

    name = "rescuer"

    def __init__(self, worker_timeout: float | None = None, *,
                 clock: Callable[[], float] = time.monotonic):
        self.worker_timeout = worker_timeout
        self._clock = clock
        #: Since when (``clock``) the database has answered every pass; None: the last pass
        #: failed on it.
        self.in_touch_since: float | None = -math.inf

    def run_once(self) -> int:
        """Reclaim, or (back in touch for less than ``WORKER_TIMEOUT``) check the database
        and reclaim nothing. Returns how many jobs it reclaimed."""
        timeout = get_settings().WORKER_TIMEOUT if self.worker_timeout is None else (
            self.worker_timeout)
        now = self._clock()
        try:
            if self.in_touch_since is None or now - self.in_touch_since < timeout:
                get_store().db_now()  # does the database answer?
                if self.in_touch_since is None:
                    self.in_touch_since = now
                    logger.info("rescuer: the database answers again; no jobs are reclaimed "
                                "for %gs (WORKER_TIMEOUT), so that live workers beat first",
                                timeout)
                if now - self.in_touch_since < timeout:
                    return 0
            return reclaim_stuck_jobs(timeout)
        except DatabaseError:
            if self.in_touch_since is not None:
                logger.warning("rescuer: cannot reach the database; once it answers again, "
                               "no jobs are reclaimed for %gs (WORKER_TIMEOUT)", timeout)
            self.in_touch_since = None
            raise
