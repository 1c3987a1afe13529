"""A queue's state that outlives its jobs: whether it is paused.

A queue exists as soon as a job names it; a row here is written only when somebody pauses it
(and stays, ``paused = False``, after a resume). Every claim reads it in the same statement
that takes the jobs (``store/claim.py`` and the vendor SQL), so a pause holds across every
worker on every host from the moment its transaction commits.
"""

from __future__ import annotations

from django.db import models


class Queue(models.Model):
    name = models.CharField(primary_key=True, max_length=100)
    paused = models.BooleanField(default=False)
    #: When the current pause began (None while running).
    paused_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    #: Some job of the queue was enqueued with a concurrency or rate limit: workers of the
    #: queue also run the limited claim (``Store.claim_limited``). Never reset.
    limited = models.BooleanField(default=False)

    class Meta:
        ordering = ["name"]
        permissions = [("pause_queue", "Can pause and resume queues")]

    def __str__(self) -> str:
        return self.name


class Dashboard(Queue):
    """No data of its own: the admin's entry for the jobs dashboard, so the site's index and
    the app's list it beside the models (``admin/dashboard.py``, ``DashboardLinkAdmin``)."""

    class Meta:
        proxy = True
        default_permissions = ()
        verbose_name = "jobs dashboard"
        verbose_name_plural = "jobs dashboard"
