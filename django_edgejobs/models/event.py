from __future__ import annotations

from django.db import models
from django.utils import timezone


class JobEvent(models.Model):
    """One state change of a job. Written in the same transaction as the change."""

    class Kind(models.TextChoices):
        ADDED = "added"
        PROCESSING = "processing"
        COMPLETED = "completed"
        FAILED = "failed"
        RETRIED = "retried"
        CANCELLED = "cancelled"
        WAITING = "waiting"
        RESUMED = "resumed"
        RECLAIMED = "reclaimed"
        RELEASED = "released"
        EDITED = "edited"
        PROLONGED = "prolonged"

    id = models.BigAutoField(primary_key=True)
    # No foreign key: events outlive pruned jobs until their own retention ends, and a job
    # insert plus its event stays one statement each without deferred constraint checks.
    job_id = models.UUIDField(db_index=True)
    type = models.CharField(max_length=16, choices=Kind.choices)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.type} {self.job_id}"
