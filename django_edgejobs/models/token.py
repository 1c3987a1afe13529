from __future__ import annotations

import secrets

from django.db import models
from django.db.models import Q
from django.utils import timezone


def new_token_id() -> str:
    return "tok_" + secrets.token_urlsafe(18)


class WaitToken(models.Model):
    """Something outside the job (a person, a webhook) completes it to resume the job."""

    class Status(models.TextChoices):
        WAITING = "waiting"
        COMPLETED = "completed"
        TIMED_OUT = "timed_out"

    id = models.CharField(primary_key=True, max_length=64, default=new_token_id, editable=False)
    job = models.ForeignKey("django_edgejobs.Job", on_delete=models.CASCADE,
                            related_name="tokens")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.WAITING)
    output = models.JSONField(null=True, blank=True)
    timeout_at = models.DateTimeField(null=True, blank=True)
    tags = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["timeout_at"], condition=Q(status="waiting"),
                         name="edgejobs_token_timeout_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.id} ({self.status})"

    def callback_path(self) -> str:
        """The signed URL path that completes this token with a POST (see ``urls.py``)."""
        from ..services.tokens import callback_path

        return callback_path(self)
