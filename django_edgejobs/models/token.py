from __future__ import annotations

import secrets
import uuid
from datetime import datetime

from django.core import signing
from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone

from .clock import Now
from .event import JobEvent
from .job import Job
from .transitions import RESUME

#: The salt of a token's signed callback value (``SECRET_KEY`` signs it).
SALT = "django_edgejobs.token-callback"


def new_token_id() -> str:
    return "tok_" + secrets.token_urlsafe(18)


def resume_jobs_of_deleted(using: str, tokens: list[tuple[str, uuid.UUID]]) -> None:
    """A deleted token can never be answered: the job waiting for it resumes now (no attempt
    used), and its handler's ``wait_for_token`` returns ``TokenResult(ok=False,
    error="token … was deleted")``. ``tokens``: (token id, job id) of the deleted tokens that
    were waiting."""
    resumed = []
    for token_id, job_id in tokens:
        if Job.objects.using(using).filter(
                id=job_id, status__in=RESUME.sources, wait_token=token_id).update(
                status=RESUME.target, run_at=Now(), wait_token="", updated_at=Now()):
            resumed.append(JobEvent(job_id=job_id, type=RESUME.event,
                                    data={"token": token_id, "reason": "deleted"}))
    JobEvent.objects.using(using).bulk_create(resumed)


class WaitTokenQuerySet(models.QuerySet["WaitToken"]):
    def delete(self) -> tuple[int, dict[str, int]]:
        """Delete the tokens and resume the jobs that waited for them (the admin's bulk delete
        and ``WaitToken.objects.filter(...).delete()`` both come here). Deleting a job deletes
        its tokens without this: nothing is left to resume."""
        with transaction.atomic(using=self.db):
            waiting = list(self.filter(status=WaitToken.Status.WAITING)
                           .values_list("id", "job_id"))
            result = super().delete()
            resume_jobs_of_deleted(self.db, waiting)
        return result


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

    objects = WaitTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["timeout_at"], condition=Q(status="waiting"),
                         name="edgejobs_token_timeout_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.id} ({self.status})"

    def delete(self, using: str | None = None, keep_parents: bool = False
               ) -> tuple[int, dict[str, int]]:
        """Delete the token; a job waiting for it resumes (see ``WaitTokenQuerySet.delete``)."""
        using = using or self._state.db or "default"
        token_id = self.pk  # Django clears it once deleted
        with transaction.atomic(using=using):
            status = (type(self).objects.using(using).filter(pk=token_id)
                      .values_list("status", flat=True).first())
            result = super().delete(using=using, keep_parents=keep_parents)
            if status == self.Status.WAITING:
                resume_jobs_of_deleted(using, [(token_id, self.job_id)])
        return result

    def callback_path(self) -> str:
        """The signed URL path that completes this token with a POST (see ``urls.py``)."""
        return callback_path(self)


def signed_value(token: WaitToken) -> str:
    """The signed part of a token's callback URL: its id and expiry, signed with SALT."""
    expires = int(token.timeout_at.timestamp()) if token.timeout_at else None
    return signing.dumps({"t": token.id, "e": expires}, salt=SALT, compress=True)


def callback_path(token: WaitToken) -> str:
    from django.urls import reverse  # the URLconf may import models: resolve it when asked

    return reverse("django_edgejobs:token-callback", args=[signed_value(token)])


def read_signed(value: str, now: datetime | None = None) -> str:
    """The token id in a signed callback value; raises ``signing.BadSignature`` or
    ``signing.SignatureExpired``."""
    data = signing.loads(value, salt=SALT)
    if not isinstance(data, dict) or not isinstance(data.get("t"), str):
        raise signing.BadSignature("malformed token signature")
    expires = data.get("e")
    now = now or timezone.now()
    if expires is not None and now.timestamp() > expires:
        raise signing.SignatureExpired("this link expired with its token")
    return data["t"]
