from django.db import models


class Run(models.Model):
    """The ledger: one row per attempt that a qa handler ran (the test oracle)."""

    job_id = models.UUIDField(db_index=True)
    attempt = models.PositiveIntegerField()
    pid = models.IntegerField()
    phase = models.CharField(max_length=20, default="done")
    at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.job_id} #{self.attempt} {self.phase}"


class Span(models.Model):
    """When a handler ran, on the database's clock: the flow-control tests' side table."""

    job_id = models.UUIDField(db_index=True)
    key = models.CharField(max_length=255)
    started = models.DateTimeField()
    ended = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.key} {self.started}..{self.ended}"
