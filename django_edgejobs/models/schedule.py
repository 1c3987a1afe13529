"""Cron schedules and the ticks they fired.

``CronTick`` is the once-per-tick guarantee: its UNIQUE (schedule, tick_at) constraint is
written in the same transaction as the tick's job, so however many schedulers race for a fire
time, one row (and so one job) wins. Skipped ticks are recorded the same way.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from django.db import models
from django.db.models import Q
from django.utils.timezone import now

from ..crontimes import CronTimes
from .job import Job


class CronOutcome(models.TextChoices):
    ENQUEUED = "enqueued"  # the tick's job was written
    SKIPPED = "skipped"  # allow_overlap=False and the previous run was still active
    ERROR = "error"  # the job could not be built (e.g. no handler for its type here)
    TRIGGERED = "triggered"  # trigger_cron: a run by hand (not a tick)
    INITIAL = "initial"  # run_on_init: the run enqueued with the schedule's creation


class CronSchedule(models.Model):
    class Source(models.TextChoices):
        API = "api", "API"  # add_cron; worker starts never touch it
        SETTINGS = "settings"  # declared in EDGEJOBS["CRON"] at the last worker start
        UNDECLARED = "undeclared"  # was declared, no longer is: paused, kept with its history

    name = models.CharField(max_length=195, unique=True)
    cron = models.CharField(max_length=200, help_text="5 fields, or 6 with seconds last.")
    type = models.CharField(max_length=200)
    payload = models.JSONField(default=dict, blank=True)
    timezone = models.CharField(max_length=64, default="UTC")
    allow_overlap = models.BooleanField(default=False)
    enabled = models.BooleanField(default=True)
    # Job options; empty/None: the job type's default, as for enqueue.
    queue = models.CharField(max_length=100, blank=True, default="")
    priority = models.IntegerField(null=True, blank=True)
    tags = models.JSONField(default=list, blank=True)
    max_attempts = models.PositiveIntegerField(null=True, blank=True)
    retry_delay = models.FloatField(null=True, blank=True)
    retry_backoff = models.BooleanField(null=True, blank=True)
    retry_delay_max = models.FloatField(null=True, blank=True)
    timeout = models.FloatField(null=True, blank=True)
    #: ``retry_backoff`` given as a mode name ("fixed", "linear", "exponential"); "" when it
    #: was given as True, False or not at all (``retry_backoff`` then holds it as given).
    retry_mode = models.CharField(max_length=12, blank=True, default="", db_default="")
    retry_multiplier = models.FloatField(null=True, blank=True)
    #: Free-form JSON object for people and tools: stored, listed and shown, never used.
    metadata = models.JSONField(default=dict, blank=True, db_default={})
    # Flow control (a key is a template over the payload; the rate is "N/s", "N/m" or "N/h").
    concurrency_key = models.CharField(max_length=255, blank=True, default="")
    concurrency_limit = models.PositiveIntegerField(null=True, blank=True)
    rate_limit = models.CharField(max_length=40, blank=True, default="")
    rate_key = models.CharField(max_length=255, blank=True, default="")

    source = models.CharField(max_length=16, choices=Source.choices, default=Source.API)
    declaration = models.JSONField(null=True, blank=True,
                                   help_text="The EDGEJOBS['CRON'] entry as last synced.")
    active_since = models.DateTimeField(
        default=now,
        help_text="Ticks before this never fire: set on create, resume and a new expression or "
                  "time zone.")
    last_tick_at = models.DateTimeField(null=True, blank=True)
    last_outcome = models.CharField(max_length=16, choices=CronOutcome.choices, blank=True,
                                    default="")
    last_run_at = models.DateTimeField(null=True, blank=True,
                                       help_text="When its last job was enqueued.")
    last_job_id = models.UUIDField(null=True, blank=True)
    created_at = models.DateTimeField(default=now)
    updated_at = models.DateTimeField(default=now)

    class Meta:
        ordering = ["name"]
        verbose_name = "cron schedule"
        constraints = [
            models.CheckConstraint(condition=Q(source__in=["api", "settings", "undeclared"]),
                                   name="edgejobs_cron_source_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.cron})"

    @property
    def backoff(self) -> bool | str | None:
        """``retry_backoff`` as it was given: a mode name, True, False, or None (the job
        type's default)."""
        return self.retry_mode or self.retry_backoff

    @property
    def status(self) -> str:
        return "active" if self.enabled else "paused"

    @property
    def times(self) -> CronTimes:
        """The fire-time calculator of this schedule's expression and zone."""
        return CronTimes.parse(self.cron, self.timezone, where=f"cron {self.name!r}")

    def describe(self) -> str:
        """The expression in words, with its zone: 'At 09:00, Monday through Friday (UTC)'."""
        return self.times.describe()

    def next_fire_times(self, n: int = 5, after: datetime | None = None) -> list[datetime]:
        """The next ``n`` fire times after ``after`` (default: now), in the schedule's zone."""
        zone = self.times.zone
        return [fire.astimezone(zone) for fire in self.times.upcoming(after or now(), n)]

    @property
    def last_job(self) -> Job | None:
        """The job of the last tick or trigger (None when there is none or it was pruned)."""
        if self.last_job_id is None:
            return None
        return Job.objects.using(self._state.db).filter(id=self.last_job_id).first()


class CronTick(models.Model):
    """One fire time of a schedule that a scheduler handled: its job, or why it was skipped."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    schedule = models.ForeignKey(CronSchedule, on_delete=models.CASCADE, related_name="ticks")
    tick_at = models.DateTimeField()
    outcome = models.CharField(max_length=16, choices=CronOutcome.choices)
    job_id = models.UUIDField(null=True, blank=True)
    reason = models.TextField(blank=True, default="")
    fired_by = models.CharField(max_length=200, blank=True, default="",
                                help_text="The scheduler that handled it (host:pid).")
    created_at = models.DateTimeField(default=now)

    class Meta:
        ordering = ["-tick_at"]
        constraints = [
            # The once-per-tick guarantee (see the module docstring).
            models.UniqueConstraint(fields=["schedule", "tick_at"], name="edgejobs_crontick_once"),
        ]
        indexes = [models.Index(fields=["tick_at"], name="edgejobs_crontick_at_idx")]

    def __str__(self) -> str:
        return f"{self.schedule_id} @ {self.tick_at:%Y-%m-%d %H:%M:%S%z}: {self.outcome}"
