"""Per-minute latency rollups: the dashboard's wait and run times, from every job."""

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
