"""Work across jobs: a job's dependencies (``JobDependency``, one row an edge) and batches
(``Batch``: jobs enqueued together, with callbacks once they have all finished).

A job enqueued with ``depends_on`` is ``waiting`` with ``wait_token = DEPENDENCIES`` until
every edge to it is *resolved*: its dependency finished and the store settled the edge
(``store/dependencies.py``). Each edge is resolved once (a conditional UPDATE under the
edge's row lock), and the dependent is made due by the transaction that resolves its last
edge while holding the dependent's row lock, so it becomes due exactly once however many
workers finish its dependencies at the same instant."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from django.db import models
from django.db.models import Q
from django.utils import timezone

from .job import ACTIVE_STATUSES, FINISHED_STATUSES

#: ``on_dependency_failure``: what a dependent does when a dependency fails for good or is
#: cancelled: "cancel" (it is cancelled too, and so on down) or "run" (it runs anyway).
ON_DEPENDENCY_FAILURE = ("cancel", "run")


class Batch(models.Model):
    """Jobs enqueued together by ``enqueue_batch``. Its callbacks are jobs waiting for every
    job of the batch: ``on_complete`` runs once all have finished (any way), ``on_success``
    once all have completed (it is cancelled when one fails for good, and revived when that
    one is retried)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    description = models.CharField(max_length=200, blank=True, default="")
    total = models.PositiveIntegerField(default=0)
    #: The callback jobs (NULL: none). Plain ids, indexed: a settle that makes jobs due
    #: looks up whether they are a batch's callbacks (their payload gets the counts).
    on_complete_job = models.UUIDField(null=True, blank=True, db_index=True)
    on_success_job = models.UUIDField(null=True, blank=True, db_index=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "batches"

    def __str__(self) -> str:
        return self.description or f"batch {self.id}"

    @property
    def callback_ids(self) -> list[uuid.UUID]:
        return [i for i in (self.on_complete_job, self.on_success_job) if i is not None]

    def counts(self, by_status: Mapping[str, int]) -> dict[str, Any]:
        """The batch's counts from its jobs counted per status: its id, total, pending (not
        finished yet: counted, not total minus finished, as pruning deletes finished jobs;
        a pruned job is counted nowhere) and each finished status."""
        return {"id": str(self.id), "total": self.total,
                "pending": sum(by_status.get(s, 0) for s in ACTIVE_STATUSES),
                **{str(s): by_status.get(s, 0) for s in FINISHED_STATUSES}}


class JobDependency(models.Model):
    """``job`` runs after ``depends_on`` finishes. Deleting either job deletes the edge (one
    DELETE for the lot: Django fast-deletes a relation nothing else hangs on)."""

    id = models.BigAutoField(primary_key=True)
    job = models.ForeignKey("django_edgejobs.Job", on_delete=models.CASCADE,
                            related_name="dependency_edges")
    depends_on = models.ForeignKey("django_edgejobs.Job", on_delete=models.CASCADE,
                                   related_name="dependent_edges")
    #: ``ON_DEPENDENCY_FAILURE``: the dependent's choice, on each of its edges.
    on_failure = models.CharField(max_length=8, default="cancel")
    #: The dependency finished and the store settled this edge (once).
    resolved = models.BooleanField(default=False)
    #: This edge cancelled the dependent (its dependency failed or was cancelled): retrying
    #: the dependency revives the dependent.
    cancelled = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["job", "depends_on"],
                                    name="edgejobs_dependency_uniq"),
            models.CheckConstraint(condition=~Q(job=models.F("depends_on")),
                                   name="edgejobs_dependency_not_self"),
            models.CheckConstraint(condition=Q(on_failure__in=ON_DEPENDENCY_FAILURE),
                                   name="edgejobs_dependency_on_failure_valid"),
        ]
        indexes = [
            # The settle's lookup: the unresolved edges of the jobs that just finished.
            models.Index(fields=["depends_on"], condition=Q(resolved=False),
                         name="edgejobs_dep_unresolved_idx"),
            # Whether a dependent has an edge left: one index entry, however many it had
            # (a batch's callback waits on every job of the batch).
            models.Index(fields=["job"], condition=Q(resolved=False),
                         name="edgejobs_dep_open_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.job_id} after {self.depends_on_id}"
