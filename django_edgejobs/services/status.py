"""Following a job from a web page: ``status_url`` signs a job's id and an expiry (HMAC with
``SECRET_KEY``, like the token callback), and the view behind it (``views.job_status_view``)
answers with the job's status as JSON. ``edgejobs-status.js`` polls it until the job ends."""

from __future__ import annotations

import hashlib
import time
import uuid
from datetime import timedelta
from typing import Any

from django.core import signing
from django.urls import reverse

from ..exceptions import JobNotFound
from ..models import Job
from ..models.job import FINISHED_STATUSES
from ..redaction import redact
from .jobs import parse_job_id

SALT = "django_edgejobs.status"
#: The longest a status URL may live: a signed URL is a credential, and a year is plenty.
MAX_EXPIRES_IN = 366 * 86400


def _job_id(job_or_id: Any) -> uuid.UUID:
    job_id = parse_job_id(getattr(job_or_id, "id", job_or_id))
    if job_id is None:
        raise ValueError(f"not a job or a job id: {job_or_id!r}")
    return job_id


def status_url(job_or_id: Any, *, expires_in: float | timedelta = 3600) -> str:
    """A signed URL path that answers the job's status as JSON for ``expires_in`` seconds
    (``django_edgejobs.urls`` must be included in the URLconf). Raises ``ValueError`` for a
    value that is not a job or a job id or a bad ``expires_in``, ``JobNotFound`` when no job
    has this id. Anyone with the URL may read the status, progress and (redacted) result or
    error until it expires."""
    job_id = _job_id(job_or_id)
    seconds = (expires_in.total_seconds() if isinstance(expires_in, timedelta)
               else expires_in)
    if (isinstance(seconds, bool) or not isinstance(seconds, int | float)
            or not 0 < seconds <= MAX_EXPIRES_IN):
        raise ValueError(f"expires_in must be seconds (or a timedelta) above 0 and at most "
                         f"{MAX_EXPIRES_IN} (a year), got {expires_in!r}")
    if not Job.objects.filter(id=job_id).exists():
        raise JobNotFound(f"no job has the id {job_id}")
    signed = signing.dumps({"j": job_id.hex, "e": int(time.time() + seconds)}, salt=SALT)
    return reverse("django_edgejobs:job-status", args=[signed])


def read_status_signature(value: str) -> uuid.UUID:
    """The job id in a status URL's signature; raises ``signing.BadSignature`` (tampered)
    or ``signing.SignatureExpired`` (expired)."""
    data = signing.loads(value, salt=SALT)
    if not isinstance(data, dict) or not isinstance(data.get("j"), str) \
            or not isinstance(data.get("e"), int):
        raise signing.BadSignature("malformed status signature")
    if data["e"] < time.time():
        raise signing.SignatureExpired("this status link expired")
    return uuid.UUID(hex=data["j"])


def job_status(job: Job) -> dict[str, Any]:
    """What the status URL answers: the job's id, status, progress, updated_at, and its result
    (completed) or error (failed, cancelled with an error), with ``REDACT_KEYS`` masked."""
    body: dict[str, Any] = {"id": str(job.id), "status": job.status,
                            "progress": job.progress, "updated_at": job.updated_at.isoformat(),
                            "finished": job.status in FINISHED_STATUSES}
    if job.status == "completed":
        body["result"] = redact(job.result)
    elif job.last_error:
        body["error"] = job.last_error
    return body


def etag(job: Job) -> str:
    """Changes whenever what ``job_status`` answers may change."""
    basis = f"{job.id}:{job.status}:{job.progress}:{job.updated_at.isoformat()}"
    return '"' + hashlib.sha256(basis.encode()).hexdigest()[:32] + '"'
