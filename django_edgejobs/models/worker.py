from __future__ import annotations

from django.db import models
from django.utils import timezone


class Worker(models.Model):
    """A runworker process. Its heartbeat proves its leases are alive."""

    id = models.CharField(primary_key=True, max_length=200)
    hostname = models.CharField(max_length=255)
    pid = models.IntegerField()
    queues = models.JSONField(default=list)
    concurrency = models.PositiveIntegerField()
    started_at = models.DateTimeField(default=timezone.now)
    last_heartbeat = models.DateTimeField(default=timezone.now, db_index=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    jobs_done = models.PositiveBigIntegerField(default=0)

    class Meta:
        ordering = ["-last_heartbeat"]

    def __str__(self) -> str:
        return self.id
