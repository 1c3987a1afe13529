from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.db import models
from django.db.models import Q
from django.utils import timezone

from ..retry import DEFAULT_MULTIPLIER
from .clock import Now
from .worker import Worker


class JobStatus(models.TextChoices):
    PENDING = "pending"
    WAITING = "waiting"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


ACTIVE_STATUSES = (JobStatus.PENDING, JobStatus.WAITING, JobStatus.PROCESSING)
FINISHED_STATUSES = (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)

#: The prefix of the keys of ``Job.steps`` that the runtime writes (the handler's waits and
#: tokens); a handler's own step names may not start with it.
RESERVED = "edgejobs:"

#: ``wait_token`` of a job waiting for its dependencies (``depends_on``), not for a token.
DEPENDENCIES = f"{RESERVED}dependencies"


#: A job with a concurrency or rate limit (``store/limits.py`` claims it).
LIMITED = ~Q(concurrency_key="") | ~Q(rate_key="")


class JobQuerySet(models.QuerySet["Job"]):
    def pending(self) -> JobQuerySet:
        return self.filter(status=JobStatus.PENDING)

    def due(self, now: datetime | None = None) -> JobQuerySet:
        """Pending jobs whose run time has come and whose expiry (if any) has not: the jobs a
        worker may claim. ``now``: the database's clock read once (default: ``Now()`` in
        SQL)."""
        at = Now() if now is None else now
        return self.filter(status=JobStatus.PENDING, run_at__lte=at).unexpired(now)

    def unexpired(self, now: datetime | None = None) -> JobQuerySet:
        """Jobs without an expiry, or whose expiry is still ahead (a claim skips the rest)."""
        at = Now() if now is None else now
        return self.filter(Q(expires_at__isnull=True) | Q(expires_at__gt=at))

    def expired(self) -> JobQuerySet:
        """Pending jobs past their expiry: they are cancelled instead of run."""
        return self.filter(status=JobStatus.PENDING, expires_at__lte=Now())

    def in_queues(self, queues: Sequence[str] | None) -> JobQuerySet:
        return self.filter(queue__in=list(queues)) if queues else self

    def finished(self) -> JobQuerySet:
        return self.filter(status__in=FINISHED_STATUSES)

    def finished_before(self, days: float) -> JobQuerySet:
        return self.finished().filter(completed_at__lt=Now() - timedelta(days=days))

    def stuck(self, worker_timeout: float, now: datetime | None = None) -> JobQuerySet:
        """Processing on a worker that stopped, or has not beaten for ``worker_timeout``
        seconds (the jobs the supervisor's reclaim will give back). ``now``: the database's
        clock read once (default: ``Now()`` in SQL)."""
        threshold = (Now() if now is None else now) - timedelta(seconds=worker_timeout)
        alive = Worker.objects.using(self.db).filter(
            last_heartbeat__gte=threshold, stopped_at__isnull=True).values("id")
        return self.filter(status=JobStatus.PROCESSING).exclude(lease_owner__in=alive)

    def overdue(self, grace: float = 60, now: datetime | None = None) -> JobQuerySet:
        """Pending and due for over ``grace`` seconds, yet no worker has claimed it. A job
        past its expiry is not counted: no worker may claim it (the supervisor cancels it)."""
        threshold = (Now() if now is None else now) - timedelta(seconds=grace)
        return self.filter(status=JobStatus.PENDING, run_at__lt=threshold).unexpired(now)


class Job(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    type = models.CharField(max_length=200)
    queue = models.CharField(max_length=100, default="default")
    payload = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.PENDING)
    priority = models.IntegerField(default=0, help_text="Higher runs first.")
    run_at = models.DateTimeField(default=timezone.now)
    #: No attempt starts after this moment: a pending job still waiting then is cancelled.
    expires_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(default=3)
    retry_delay = models.FloatField(default=60)
    retry_backoff = models.BooleanField(default=True)
    retry_delay_max = models.FloatField(default=3600)
    timeout = models.FloatField(null=True, blank=True, help_text="Seconds per attempt.")
    tags = models.JSONField(default=list, blank=True)
    # NULL, not "": the unique constraint must ignore jobs without a key.
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001
    progress = models.PositiveSmallIntegerField(null=True, blank=True)
    result = models.JSONField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    error_history = models.JSONField(default=list, blank=True)
    #: The fingerprint of ``last_error`` (``fingerprints.py``: exception class and message,
    #: numbers and ids aside), written with it, so failures group in SQL. NULL: no error, or
    #: one written before migration 0014 (grouped from ``last_error`` in Python).
    error_group = models.CharField(max_length=12, null=True, blank=True)  # noqa: DJ001
    #: Durable steps: results of ``ctx.run`` by step name, plus the waits and tokens of the
    #: handler by position, so a re-invoked handler replays instead of redoing.
    steps = models.JSONField(default=dict, blank=True)
    #: The token a ``waiting`` job waits for ("" when it waits for a time).
    wait_token = models.CharField(max_length=64, blank=True, default="")
    lease_owner = models.CharField(max_length=200, blank=True, default="")
    lease_token = models.UUIDField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    # Transient, never stored: set by enqueue on unsaved instances (seconds from now, counted on
    # the database's clock at insert time); declared here only for type checkers.
    enqueue_delay: float | None
    enqueue_expires: float | None
    payload_json: str | None  # the payload as validated JSON text
    #: ``depends_on`` (ids, or jobs built in the same call) and ``on_dependency_failure``.
    depends_on_refs: list[Any]
    on_dependency_failure: str
    updated_at = models.DateTimeField(default=timezone.now)
    #: Flow control (``@job(concurrency_key=..., rate_limit=...)``), resolved at enqueue: at
    #: most ``concurrency_limit`` jobs sharing ``concurrency_key`` run at once; at most
    #: ``rate_limit`` attempts of jobs sharing ``rate_key`` start in any ``rate_period``
    #: seconds. "" / None: no limit. Claimed by ``Store.claim_limited`` only.
    concurrency_key = models.CharField(max_length=255, blank=True, default="")
    concurrency_limit = models.PositiveIntegerField(null=True, blank=True)
    rate_key = models.CharField(max_length=255, blank=True, default="")
    rate_limit = models.PositiveIntegerField(null=True, blank=True)
    rate_period = models.FloatField(null=True, blank=True)
    #: OpenTelemetry: the enqueue's trace context (``{"traceparent": ...}`` as JSON text),
    #: the parent of each attempt's span ("" without tracing; ``telemetry.py``).
    trace_context = models.CharField(max_length=1024, blank=True, default="")
    #: ``retry_backoff``'s mode: "fixed", "linear" or "exponential" (NULL: a row written
    #: before migration 0012, or by a process that predates it: ``retry_backoff`` says, True
    #: being "exponential"). ``retry_backoff`` is False exactly when the delay is fixed, so it
    #: alone still reads right. Read ``backoff_mode``. NULL rather than "": a nullable column
    #: is added without rewriting the table on SQLite too (PostgreSQL: either way).
    retry_mode = models.CharField(max_length=12, null=True, blank=True)  # noqa: DJ001
    #: How the delay grows (``retry.py``); None: the mode's default (2, or 1 linear).
    retry_multiplier = models.FloatField(null=True, blank=True)
    #: The batch it belongs to (``enqueue_batch``); NULL for most jobs. No constraint in the
    #: database and a partial index: adding the column to a large table locks it only for
    #: the catalogue change (migration 0015).
    batch = models.ForeignKey("django_edgejobs.Batch", null=True, blank=True,
                              on_delete=models.SET_NULL, related_name="jobs",
                              db_constraint=False, db_index=False)

    objects = JobQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        permissions = [
            ("retry_job", "Can retry jobs"),
            ("cancel_job", "Can cancel jobs"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="edgejobs_job_idempotency_key_uniq",
            ),
            models.CheckConstraint(
                condition=Q(status__in=JobStatus.values), name="edgejobs_job_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(progress__isnull=True) | Q(progress__lte=100),
                name="edgejobs_job_progress_range",
            ),
        ]
        indexes = [
            # The claim query: due pending jobs of a queue, best priority first; jobs with a
            # flow-control limit are the limited claim's, in an index of their own, so that
            # neither claim walks past the other's jobs.
            models.Index(
                fields=["queue", "-priority", "run_at"],
                condition=Q(status="pending", concurrency_key="", rate_key=""),
                name="edgejobs_job_claim_idx",
            ),
            models.Index(
                fields=["queue", "-priority", "run_at"],
                condition=Q(status="pending") & LIMITED,
                name="edgejobs_job_limited_claim_idx",
            ),
            # Reclaim: processing jobs by lease owner.
            models.Index(
                fields=["lease_owner"],
                condition=Q(status="processing"),
                name="edgejobs_job_processing_idx",
            ),
            # Time waits that are due to resume.
            models.Index(
                fields=["run_at"],
                condition=Q(status="waiting", wait_token=""),
                name="edgejobs_job_waiting_idx",
            ),
            # Pending jobs with an expiry, for the supervisor's cancel of expired ones.
            models.Index(
                fields=["expires_at"],
                condition=Q(status="pending", expires_at__isnull=False),
                name="edgejobs_job_expiring_idx",
            ),
            # Concurrency limits: the running jobs of a key, counted under the key's lock.
            models.Index(
                fields=["concurrency_key"],
                condition=Q(status="processing") & ~Q(concurrency_key=""),
                name="edgejobs_job_running_key_idx",
            ),
            models.Index(fields=["status", "completed_at"], name="edgejobs_job_finished_idx"),
            # Failure groups: the failed jobs of a group, latest first (only failed rows). On
            # PostgreSQL it also INCLUDEs the type (migration 0014), so the groups' counts,
            # types and timelines read only the index.
            models.Index(
                fields=["error_group", "-completed_at"],
                condition=Q(status="failed"),
                name="edgejobs_job_failed_group_idx",
            ),
            models.Index(fields=["type", "-created_at"], name="edgejobs_job_type_idx"),
            # A batch's jobs (most jobs have none).
            models.Index(fields=["batch"], condition=Q(batch__isnull=False),
                         name="edgejobs_job_batch_idx"),
            models.Index(fields=["-created_at"], name="edgejobs_job_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.id} ({self.status})"

    @property
    def backoff_mode(self) -> str:
        """How the retry delay grows: "fixed", "linear" or "exponential"."""
        if not self.retry_backoff:
            return "fixed"
        return "linear" if self.retry_mode == "linear" else "exponential"

    @property
    def backoff_multiplier(self) -> float | None:
        """The multiplier the retry delay grows by (None for a fixed delay)."""
        mode = self.backoff_mode
        if mode == "fixed":
            return None
        return self.retry_multiplier or DEFAULT_MULTIPLIER[mode]

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_STATUSES

    @property
    def duration(self) -> timedelta | None:
        if self.started_at and self.completed_at:
            return self.completed_at - self.started_at
        return None
