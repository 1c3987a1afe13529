"""The rows flow control keeps besides the jobs (``store/limits.py`` uses them).

- ``LimitKey``: one row per concurrency or rate key. A limited claim locks the rows of the keys
  it may take (``SELECT ... FOR UPDATE``, in key order), so claims of one key run one after
  another while claims of other keys go on. PostgreSQL locks an advisory lock per key instead
  and writes no row here.
- ``RateStart``: one row per attempt started under a rate limit, with its key and moment (the
  database's clock): the sliding window counts them. Rows older than their key's period are
  deleted by the claims of that key.
"""

from __future__ import annotations

from django.db import models


class LimitKey(models.Model):
    key = models.CharField(primary_key=True, max_length=260)

    def __str__(self) -> str:
        return self.key


class RateStart(models.Model):
    id = models.BigAutoField(primary_key=True)
    key = models.CharField(max_length=255)
    started_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["key", "started_at"], name="edgejobs_ratestart_idx")]

    def __str__(self) -> str:
        return f"{self.key} {self.started_at}"
