"""Workers: the ``Worker`` row of each process (register, heartbeat, stop) and forgetting
long-gone workers (``prune_workers``)."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import F, Q

from ..models import Job, JobStatus, Worker
from ..models.clock import Now
from .core import StoreCore


class WorkerVerbs(StoreCore):
    """The worker registry."""

    def register_worker(self, worker: Worker) -> None:
        """Record a worker as alive (the runtime first reclaims what an earlier process with
        the same id left processing)."""
        worker.save(using=self.alias, force_insert=not Worker.objects.using(self.alias)
                    .filter(id=worker.id).exists())
        Worker.objects.using(self.alias).filter(id=worker.id).update(
            last_heartbeat=Now(), started_at=Now(), stopped_at=None
        )

    def heartbeat(self, worker_id: str, jobs_done: int = 0) -> bool:
        """Prove the worker alive; False when its row is gone (pruned) or marked stopped."""
        return bool(
            Worker.objects.using(self.alias)
            .filter(id=worker_id, stopped_at__isnull=True)
            .update(last_heartbeat=Now(), jobs_done=F("jobs_done") + jobs_done)
        )

    def stop_worker(self, worker_id: str) -> None:
        Worker.objects.using(self.alias).filter(id=worker_id).update(stopped_at=Now())

    def prune_workers(self, older_than: float) -> int:
        """Forget workers stopped or silent for ``older_than`` seconds (none holds a lease)."""
        cutoff = Now() - timedelta(seconds=older_than)
        holding = Job.objects.using(self.alias).filter(status=JobStatus.PROCESSING).values(
            "lease_owner")
        return Worker.objects.using(self.alias).filter(
            Q(stopped_at__lt=cutoff) | Q(last_heartbeat__lt=cutoff)
        ).exclude(id__in=holding).delete()[0]
