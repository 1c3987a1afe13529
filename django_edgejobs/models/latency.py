"""Per-minute rollups: the dashboard's wait and run times and its finished counts, from every
job."""

from __future__ import annotations

from django.db import models


class LatencyMinute(models.Model):
    """Histograms of the wait (due -> handler began) and run (handler began -> ended) seconds of
    the jobs completed in one minute (``runtime/maintenance/rollup.py`` writes them;
    ``latency.py`` defines the buckets). ``wait`` and ``run`` map a bucket index (text) to a
    count, buckets with no job left out."""

    minute = models.DateTimeField(primary_key=True)
    completed = models.PositiveIntegerField(default=0)
    wait = models.JSONField(default=dict)
    run = models.JSONField(default=dict)
    #: When it was last rolled, on the database's clock (the pass's ``now``).
    rolled_at = models.DateTimeField()

    class Meta:
        db_table = "edgejobs_latency_minute"
        default_permissions = ()

    def __str__(self) -> str:
        return f"{self.minute:%Y-%m-%d %H:%M} ({self.completed} completed)"


class FinishedMinute(models.Model):
    """The jobs of one queue and type that finished in one minute, by status: written with
    the minute's ``LatencyMinute`` (in the same transaction, by the same roll), so a minute
    that has a ``LatencyMinute`` has all of its rows here (none when nothing finished)."""

    minute = models.DateTimeField()
    queue = models.CharField(max_length=100)
    type = models.CharField(max_length=200)
    completed = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    cancelled = models.PositiveIntegerField(default=0)

    class Meta:
        db_table = "edgejobs_finished_minute"
        default_permissions = ()
        constraints = [
            # Also the index the dashboard's range reads use (minute first).
            models.UniqueConstraint(fields=["minute", "queue", "type"],
                                    name="edgejobs_finished_minute_once"),
        ]

    def __str__(self) -> str:
        return (f"{self.minute:%Y-%m-%d %H:%M} {self.queue}/{self.type}: {self.completed} "
                f"completed, {self.failed} failed, {self.cancelled} cancelled")
