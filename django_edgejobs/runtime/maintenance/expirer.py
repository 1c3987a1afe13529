"""The job expirer: cancels pending jobs whose ``expires`` moment passed before they ran."""

from __future__ import annotations

import logging

from ... import signals
from ...models import Job
from ...store import get_store
from ..service import SupervisorService
from .rescuer import BATCH

logger = logging.getLogger("django_edgejobs.supervisor")


def cancel_expired_jobs() -> int:
    """Cancel pending jobs whose ``expires`` moment has passed; returns how many."""
    total = 0
    while True:
        store = get_store()
        ids = store.expire_jobs()
        total += len(ids)
        store.settle(ids)  # their dependents: cancelled, or run anyway
        if ids and signals.job_cancelled.has_listeners():
            for job in Job.objects.filter(id__in=ids):
                signals.job_cancelled.send(sender=Job, job=job)
        for job_id in ids:
            logger.info("job=%s expired before it could start; cancelled", job_id)
        if len(ids) < BATCH:
            return total


class JobExpirer(SupervisorService):
    """Every ``SUPERVISOR_INTERVAL``: ``cancel_expired_jobs()``."""

    name = "job_expirer"

    def run_once(self) -> int:
        return cancel_expired_jobs()
