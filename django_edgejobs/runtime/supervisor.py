"""The supervisor: the maintenance services (``runtime/maintenance/``) taken together. A
``runworker`` process runs them on one thread (``Supervisor.services()`` in a
``ServiceLoop``); ``Supervisor().run_once()`` runs one pass of each, for a project that runs
them from its own scheduler. Safe in many processes at once.

The functions of the public API (``reclaim_stuck_jobs``, ``cleanup_old_jobs``,
``cleanup_old_job_events``) and their siblings are importable from here, as before."""

from __future__ import annotations

import time
from typing import Any

from .maintenance import (
    JobExpirer,
    LatencyRollup,
    Pruner,
    Rescuer,
    Resumer,
    TokenExpirer,
    cancel_expired_jobs,
    cleanup_old_job_events,
    cleanup_old_jobs,
    reclaim_orphans,
    reclaim_stuck_jobs,
    resume_due_waits,
)
from .service import Service

__all__ = ["Supervisor", "cancel_expired_jobs", "cleanup_old_job_events", "cleanup_old_jobs",
           "reclaim_orphans", "reclaim_stuck_jobs", "resume_due_waits"]


class Supervisor:
    """The rescuer, resumer, job expirer and token expirer every ``SUPERVISOR_INTERVAL``; the
    pruner every ``PRUNE_INTERVAL``; the latency rollup every ``ROLLUP_INTERVAL`` (15 s)."""

    def __init__(self, prune_interval: float | None = None):
        self.rescuer = Rescuer()
        self.resumer = Resumer()
        self.job_expirer = JobExpirer()
        self.token_expirer = TokenExpirer()
        self.pruner = Pruner(prune_interval)
        self.rollup = LatencyRollup()
        self._last_prune: float | None = None

    def services(self) -> list[Service]:
        return [self.rescuer, self.resumer, self.job_expirer, self.token_expirer, self.pruner,
                self.rollup]

    def run_once(self) -> dict[str, Any]:
        """One pass of each service; the pruner's only if ``PRUNE_INTERVAL`` has passed since
        this object's last prune (always on the first call)."""
        done: dict[str, Any] = {"reclaimed": self.rescuer.run_once(),
                                "resumed": self.resumer.run_once(),
                                "expired": self.job_expirer.run_once(),
                                "tokens_expired": self.token_expirer.run_once(),
                                "minutes_rolled": self.rollup.run_once()}
        now = time.monotonic()
        if self._last_prune is None or now - self._last_prune >= self.pruner.interval:
            self._last_prune = now
            done.update(self.pruner.run_once())
        return done
