"""The pruner: deletes old history (finished jobs, events, stopped workers' rows)."""

from __future__ import annotations

from ...conf import get_settings
from ...store import get_store
from ..service import Service

#: A stopped (or silent) worker's row is deleted after a day.
WORKER_ROWS_KEPT_SECONDS = 86400


def cleanup_old_jobs(days: float | None = None) -> int:
    """Delete completed, failed and cancelled jobs finished more than ``days`` ago."""
    return get_store().prune_jobs(get_settings().KEEP_FINISHED_DAYS if days is None else days)


def cleanup_old_job_events(days: float | None = None) -> int:
    """Delete job events older than ``days``."""
    return get_store().prune_events(get_settings().KEEP_EVENTS_DAYS if days is None else days)


class Pruner(Service):
    """Every ``PRUNE_INTERVAL``: finished jobs past ``KEEP_FINISHED_DAYS``, events past
    ``KEEP_EVENTS_DAYS``, worker rows silent for a day, and batches older than
    ``KEEP_FINISHED_DAYS`` with no job left."""

    name = "pruner"

    def __init__(self, interval: float | None = None):
        self._interval = interval

    @property
    def interval(self) -> float:
        return get_settings().PRUNE_INTERVAL if self._interval is None else self._interval

    def run_once(self) -> dict[str, int]:
        return {"jobs_pruned": cleanup_old_jobs(),
                "events_pruned": cleanup_old_job_events(),
                "workers_pruned": get_store().prune_workers(older_than=WORKER_ROWS_KEPT_SECONDS),
                "batches_pruned": get_store().prune_batches(get_settings().KEEP_FINISHED_DAYS)}
