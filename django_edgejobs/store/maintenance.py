"""Upkeep: ``reclaim`` gives back the jobs of dead workers, ``expire_jobs`` cancels pending
jobs past their ``expires_at``, ``prune_jobs``/``prune_events``/``prune_batches`` delete old
history."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.db.models import Exists, OuterRef

from ..fingerprints import error_group
from ..models import Batch, Job, JobEvent, Worker
from ..models import transitions as t
from ..models.clock import Now
from .core import StoreCore, append_error


class MaintenanceVerbs(StoreCore):
    """What the supervisor and the prune command run."""

    def reclaim(self, worker_timeout: float, limit: int = 500,
                owner: str | None = None) -> list[tuple[uuid.UUID, str]]:
        """Give back jobs whose worker stopped heart-beating (or, with ``owner``, the jobs that
        a previous process with that worker id left behind): pending again, or failed when
        no attempt is left. Safe with many supervisors at once. Returns (id, new status)."""
        threshold = Now() - timedelta(seconds=worker_timeout)

        def run() -> list[tuple[uuid.UUID, str]]:
            out: list[tuple[uuid.UUID, str]] = []
            with transaction.atomic(using=self.alias):
                stuck_qs = Job.objects.using(self.alias).filter(status__in=t.RECLAIM.sources)
                if owner is not None:
                    stuck_qs = stuck_qs.filter(lease_owner=owner)
                    why = f"worker {owner} restarted while running attempt {{attempt}}"
                else:
                    alive = Worker.objects.using(self.alias).filter(
                        last_heartbeat__gte=threshold, stopped_at__isnull=True
                    ).values("id")
                    stuck_qs = stuck_qs.exclude(lease_owner__in=alive)
                    why = (f"worker {{owner}} stopped heart-beating for {worker_timeout:g}s "
                           "while running attempt {attempt}")
                stuck = list(
                    stuck_qs.select_for_update(skip_locked=True)
                    .only("id", "attempts", "max_attempts", "lease_token", "lease_owner",
                          "error_history")[:limit]
                )
                events = []
                for job in stuck:
                    error = why.format(owner=job.lease_owner or "?", attempt=job.attempts)
                    history = append_error(job.error_history, job.attempts, error, "")
                    last = job.attempts >= job.max_attempts
                    transition = t.RECLAIM_FAIL if last else t.RECLAIM
                    status = transition.target
                    changes: dict[str, Any] = dict(
                        status=status, lease_token=None, lease_owner="", last_error=error,
                        error_history=history, error_group=error_group(error, history),
                        updated_at=Now(),
                    )
                    if last:
                        changes["completed_at"] = Now()
                    else:
                        changes["run_at"] = Now()
                    n = Job.objects.using(self.alias).filter(
                        id=job.id, status__in=transition.sources, lease_token=job.lease_token
                    ).update(**changes)
                    if n:
                        out.append((job.id, status))
                        events.append((job.id, transition.event,
                                       {"worker": job.lease_owner, "attempt": job.attempts,
                                        "status": status}))
                        if last:  # the job ended: its end is a failure, as a worker's would be
                            events.append((job.id, t.FAIL.event, {"error": error}))
                self._events(events)
            return out

        return self.retrying(run)

    def expire_jobs(self, limit: int = 500) -> list[uuid.UUID]:
        """Pending jobs past their ``expires_at`` are cancelled instead of run (event
        ``cancelled`` with reason ``expired``). Returns their ids."""

        def run() -> list[uuid.UUID]:
            with transaction.atomic(using=self.alias):
                expired = Job.objects.using(self.alias).expired()
                ids = list(expired.select_for_update(skip_locked=True)
                           .values_list("id", flat=True)[:limit])
                if not ids:
                    return []
                # Only rows still pending and expired now: a claim may have won meanwhile.
                ids = list(expired.filter(id__in=ids).values_list("id", flat=True))
                expired.filter(id__in=ids).update(
                    status=t.EXPIRE.target, completed_at=Now(), updated_at=Now())
                self._events((i, t.EXPIRE.event, {"reason": "expired"}) for i in ids)
                return ids

        return self.retrying(run)

    def prune_jobs(self, days: float, batch: int = 1000) -> int:
        total = 0
        while True:
            ids = list(Job.objects.using(self.alias).finished_before(days)
                       .values_list("id", flat=True)[:batch])
            if not ids:
                return total
            # Count the jobs, not the wait tokens deleted with them.
            total += Job.objects.using(self.alias).filter(id__in=ids).delete()[1].get(
                Job._meta.label, 0)

    def prune_batches(self, days: float, batch: int = 1000) -> int:
        """Delete batches created more than ``days`` ago whose jobs are all gone (pruned or
        deleted); returns how many."""
        total = 0
        members = Job.objects.using(self.alias).filter(batch_id=OuterRef("id"))
        while True:
            ids = list(Batch.objects.using(self.alias)
                       .filter(created_at__lt=Now() - timedelta(days=days))
                       .filter(~Exists(members)).values_list("id", flat=True)[:batch])
            if not ids:
                return total
            total += Batch.objects.using(self.alias).filter(id__in=ids).delete()[1].get(
                Batch._meta.label, 0)

    def prune_events(self, days: float, batch: int = 5000) -> int:
        total = 0
        cutoff = Now() - timedelta(days=days)
        while True:
            ids = list(JobEvent.objects.using(self.alias).filter(created_at__lt=cutoff)
                       .values_list("id", flat=True)[:batch])
            if not ids:
                return total
            total += JobEvent.objects.using(self.alias).filter(id__in=ids).delete()[0]
