"""List filters of the job list. None of them runs a query to find its choices: the choices
come from settings, the registry and the schedules, so a table of millions of rows costs no
``SELECT DISTINCT`` scan (Django's field filters would run one per page view)."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.contrib import admin

from ..conf import get_settings
from ..models import CronSchedule
from ..models.job import FINISHED_STATUSES, JobStatus
from ..registry import get_registry
from ..services.failures import failed_ids, is_fingerprint
from ..services.jobs import filter_tags
from ..store import get_store
from .actions import MAX_ROWS

#: "Overdue": due for longer than this, yet unclaimed.
OVERDUE_AFTER = 60.0


def db_now():
    """The database's clock, read once: a constant in the query, where ``Now() - interval``
    costs SQLite a Python function call per row."""
    return get_store().db_now()


#: The dashboard's windows, in whole units: "1h" is this minute so far and the 59 before it,
#: "24h" this hour so far and the 23 before it (its charts' buckets; each card links here).
FINISHED_WINDOWS = {"1h": (timedelta(minutes=1), 60), "24h": (timedelta(hours=1), 24)}


def floor_time(when: datetime, size: timedelta) -> datetime:
    """``when`` down to a whole ``size`` since the epoch (whole seconds)."""
    seconds = int(size.total_seconds())
    epoch = int(when.timestamp())
    return when - timedelta(seconds=epoch % seconds, microseconds=when.microsecond)


def finished_since(window: str, now: datetime) -> datetime | None:
    """Where the dashboard's ``window`` ("1h", "24h") begins at ``now``; None if unknown."""
    found = FINISHED_WINDOWS.get(window)
    if found is None:
        return None
    unit, count = found
    return floor_time(now, unit) - unit * (count - 1)


def _with_current(choices: list[tuple[str, str]], value: str | None) -> list[tuple[str, str]]:
    """Keep the value in the URL choosable even when it is not a known choice."""
    if value and value not in {c[0] for c in choices}:
        choices = [*choices, (value, value)]
    return choices


class StatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return JobStatus.choices

    def queryset(self, request, queryset):
        value = self.value()
        if value in JobStatus.values:
            return queryset.filter(status=value)
        return queryset


class QueueFilter(admin.SimpleListFilter):
    title = "queue"
    parameter_name = "queue"

    def lookups(self, request, model_admin):
        names = set(get_settings().QUEUES) | {jt.queue for jt in get_registry()}
        return _with_current([(q, q) for q in sorted(names)], self.value())

    def queryset(self, request, queryset):
        return queryset.filter(queue=self.value()) if self.value() else queryset


class TypeFilter(admin.SimpleListFilter):
    title = "type"
    parameter_name = "type"

    def lookups(self, request, model_admin):
        return _with_current([(n, n) for n in get_registry().names()], self.value())

    def queryset(self, request, queryset):
        return queryset.filter(type=self.value()) if self.value() else queryset


class TagFilter(admin.SimpleListFilter):
    """Any tag by URL (``?tag=user:123``, or search ``tag:user:123``); the choices offered are
    the tags of cron schedules."""

    title = "tag"
    parameter_name = "tag"

    def lookups(self, request, model_admin):
        names = CronSchedule.objects.order_by("name").values_list("name", flat=True)[:50]
        return _with_current([(f"cron:{n}", f"cron:{n}") for n in names], self.value())

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        try:
            return filter_tags(queryset, [self.value()], "any")
        except ValueError:
            return queryset.none()


class AttentionFilter(admin.SimpleListFilter):
    title = "needs attention"
    parameter_name = "attention"

    def lookups(self, request, model_admin):
        return [
            ("stuck", "Stuck (processing on a dead worker)"),
            ("overdue", "Overdue (due, unclaimed > 1 min)"),
            ("due", "Due now (pending)"),
        ]

    def queryset(self, request, queryset):
        value = self.value()
        if value == "stuck":
            return queryset.stuck(get_settings().WORKER_TIMEOUT, now=db_now())
        if value == "overdue":
            return queryset.overdue(OVERDUE_AFTER, now=db_now())
        if value == "due":
            return queryset.due(now=db_now())
        return queryset


class FinishedFilter(admin.SimpleListFilter):
    title = "finished within"
    parameter_name = "finished"

    def lookups(self, request, model_admin):
        return [("1h", "the last hour"), ("24h", "the last 24 hours")]

    def queryset(self, request, queryset):
        since = finished_since(self.value() or "", db_now())
        if since is None:
            return queryset
        return queryset.filter(status__in=FINISHED_STATUSES, completed_at__gte=since)


class WorkerFilter(admin.SimpleListFilter):
    """Jobs a worker holds now (``?worker=<id>``, linked from the dashboard and workers)."""

    title = "worker"
    parameter_name = "worker"

    def lookups(self, request, model_admin):
        return _with_current([], self.value())

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        return queryset.filter(status=JobStatus.PROCESSING, lease_owner=self.value())


class ErrorGroupFilter(admin.SimpleListFilter):
    """Jobs of one failure group (``?error_group=<fingerprint>``, linked from the Failures
    page): those failed for good, or with ``status=pending`` those still retrying after the
    same failure; the most recent ``MAX_ROWS``, as many as one action handles (the same
    constant, so "Retry all" or "Cancel retrying" of a group is one action run)."""

    title = "failure group"
    parameter_name = "error_group"

    def __init__(self, request, params, model, model_admin):
        self.retrying = request.GET.get("status") == JobStatus.PENDING
        super().__init__(request, params, model, model_admin)

    def lookups(self, request, model_admin):
        return _with_current([], self.value())

    def queryset(self, request, queryset):
        value = self.value()
        if not value:
            return queryset
        if not is_fingerprint(value):
            return queryset.none()
        status = JobStatus.PENDING if self.retrying else JobStatus.FAILED
        return queryset.filter(id__in=failed_ids(error_group=value, limit=MAX_ROWS,
                                                 status=status))
