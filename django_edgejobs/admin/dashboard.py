"""The dashboard page: ``admin:django_edgejobs_dashboard``. Reads only (GET)."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.views.decorators.http import require_GET

from ..models import Dashboard, Job
from ..store import get_store
from . import charts, display, stats
from .queues import can_pause

#: Seconds between in-place updates the page offers (``static/django_edgejobs/live.js``).
REFRESH_CHOICES = (5, 10, 30, 60)
DEFAULT_REFRESH = 10
COLORS = {"completed": "#3b8a3e", "failed": "#c0392b", "p50": "#2b7bb9", "p95": "#e08a1e"}


def changelist_url(**params: object) -> str:
    """The job list filtered by ``params`` (the filters' parameter names)."""
    base = reverse("admin:django_edgejobs_job_changelist")
    query = urlencode({k: v for k, v in params.items() if v not in (None, "")})
    return f"{base}?{query}" if query else base


def _labels(buckets: stats.Buckets, fmt: str) -> list[str]:
    from django.utils import timezone

    return [timezone.localtime(lo).strftime(fmt) for lo, _ in buckets.edges()]


def build_charts(data: dict) -> dict[str, str]:
    hour, day = data["hour"], data["day"]
    t_hour, t_day = data["throughput_hour"], data["throughput_day"]
    lat_buckets = data["latency_buckets"]

    def bars(buckets, values, title, fmt, every):
        return charts.stacked_bars(
            _labels(buckets, fmt),
            [charts.Series("completed", COLORS["completed"], values["completed"]),
             charts.Series("failed", COLORS["failed"], values["failed"])],
            title=title, label_every=every)

    def latency(buckets, values, name, title, fmt, every):
        return charts.lines(
            _labels(buckets, fmt),
            [charts.Series("p50", COLORS["p50"], values[f"{name}_p50"]),
             charts.Series("p95", COLORS["p95"], values[f"{name}_p95"])],
            title=title, unit="s", label_every=every)

    return {
        "throughput_hour": bars(hour, t_hour, "Jobs completed and failed per minute, last hour",
                                "%H:%M", 10),
        "throughput_day": bars(day, t_day, "Jobs completed and failed per hour, last 24 hours",
                               "%H:00", 3),
        "wait_hour": latency(lat_buckets, data["latency_hour"], "wait",
                             "Wait time (due to started), p50 and p95, last hour", "%H:%M", 2),
        "run_hour": latency(lat_buckets, data["latency_hour"], "run",
                            "Run time (started to completed), p50 and p95, last hour",
                            "%H:%M", 2),
        "wait_day": latency(day, data["latency_day"], "wait",
                            "Wait time, p50 and p95, last 24 hours", "%H:00", 3),
        "run_day": latency(day, data["latency_day"], "run",
                           "Run time, p50 and p95, last 24 hours", "%H:00", 3),
    }


def percent(rate: float | None) -> str:
    return "—" if rate is None else f"{rate * 100:.1f} %"


def refresh_seconds(request: HttpRequest) -> int:
    try:
        value = int(request.GET.get("refresh", DEFAULT_REFRESH))
    except ValueError:
        return DEFAULT_REFRESH
    return value if value in REFRESH_CHOICES else DEFAULT_REFRESH


@require_GET
def dashboard_view(request: HttpRequest, model_admin) -> TemplateResponse:
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    data = stats.collect(get_store().db_now())
    totals = data["totals"]
    # (label, number, link, alert): an alert card is drawn in red when its number is not 0.
    cards = [
        ("Due now", data["due"], changelist_url(attention="due"), False),
        ("Processing", totals["processing"], changelist_url(status="processing"), False),
        ("Waiting", totals["waiting"], changelist_url(status="waiting"), False),
        ("Completed, 1 h", data["totals_1h"]["completed"],
         changelist_url(status="completed", finished="1h"), False),
        ("Failed, 1 h", data["totals_1h"]["failed"],
         changelist_url(status="failed", finished="1h"), True),
        ("Failed, 24 h", data["totals_24h"]["failed"],
         changelist_url(status="failed", finished="24h"), True),
        ("Stuck", data["stuck"], changelist_url(attention="stuck"), True),
        ("Overdue", data["overdue"], changelist_url(attention="overdue"), True),
        ("Paused queues", sum(1 for row in data["queues"] if row.paused), "#dashboard-queues",
         True),
    ]
    type_rows = [
        {
            "type": row.type,
            "url": changelist_url(type=row.type),
            "cells": [
                (row.counts.get(status, 0),
                 changelist_url(type=row.type, status=status,
                                finished="1h" if status in stats.FINISHED_COLUMNS else None))
                for status in stats.STATUS_COLUMNS
            ],
            "failure_rate": percent(row.failure_rate),
        }
        for row in data["types"]
    ]
    queue_rows = [
        {
            "queue": row.queue,
            "paused": row.paused,
            "url": changelist_url(queue=row.queue),
            "due": row.due,
            "due_url": changelist_url(queue=row.queue, attention="due"),
            "oldest_due_age": display.age(row.oldest_due, data["now"]),
            "cells": [
                (row.counts.get(status, 0),
                 changelist_url(queue=row.queue, status=status,
                                finished="1h" if status in stats.FINISHED_COLUMNS else None))
                for status in stats.STATUS_COLUMNS
            ],
        }
        for row in data["queues"]
    ]
    refresh = refresh_seconds(request)
    workers = [{"row": w, "heartbeat_age": display.human_duration(w.heartbeat_age)}
               for w in data["workers"]]
    context = {
        **model_admin.admin_site.each_context(request),
        "title": "Jobs dashboard",
        "opts": model_admin.opts,
        "app_label": model_admin.opts.app_label,
        "data": data,
        "cards": cards,
        "queue_rows": queue_rows,
        "can_pause": can_pause(request),
        "queue_action_url": reverse("admin:django_edgejobs_queue_action"),
        "type_rows": type_rows,
        "failures_url": reverse("admin:django_edgejobs_failures"),
        "workers": workers,
        "oldest_due_age": display.age(data["oldest_due"], data["now"]),
        "failure_rate_1h": percent(data["failure_rate_1h"]),
        "failure_rate_24h": percent(data["failure_rate_24h"]),
        "status_columns": stats.STATUS_COLUMNS,
        "finished_columns": stats.FINISHED_COLUMNS,
        "charts": build_charts(data),
        "refresh": refresh,
        "refresh_choices": REFRESH_CHOICES,
        "changelist_url": changelist_url(),
        "due_url": changelist_url(attention="due"),
        "failed_1h_url": changelist_url(status="failed", finished="1h"),
        "failed_24h_url": changelist_url(status="failed", finished="24h"),
        "finished_1h_url": changelist_url(finished="1h"),
        "finished_24h_url": changelist_url(finished="24h"),
    }
    return TemplateResponse(request, "admin/django_edgejobs/dashboard.html", context)


@admin.register(Dashboard)
class DashboardLinkAdmin(admin.ModelAdmin):
    """The dashboard's entry in the admin's indexes ("Jobs dashboard", beside the models):
    its list URL goes to the dashboard. Seen by whoever may see the dashboard."""

    def _job_admin(self):
        return self.admin_site._registry[Job]

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self._job_admin().has_module_permission(request)

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        return self._job_admin().has_view_permission(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def get_urls(self):
        def go(request: HttpRequest) -> HttpResponseRedirect:
            if not self.has_view_permission(request):
                raise PermissionDenied
            return HttpResponseRedirect(reverse("admin:django_edgejobs_dashboard"))

        return [path("", self.admin_site.admin_view(go),
                     name="django_edgejobs_dashboard_changelist")]
