"""The Failures page, ``admin:django_edgejobs_failures``: failed jobs grouped by what went
wrong (``services/failures.py``), each group with a sparkline of its failures over the window
and the jobs of the group still retrying. The page only reads (GET). Its "Retry all" and
"Cancel retrying" buttons post the job list's own Retry and Cancel actions over the group (the
list's ``error_group`` filter with ``status`` failed or pending, select across), so
permission, confirmation, the 10,000-job cap and the audit log are the actions'."""

from __future__ import annotations

from datetime import timedelta

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET

from ..models import JobStatus
from ..services.failures import FailureGroup, Timeline, grouped_failures
from ..store import get_store
from . import charts, display
from .dashboard import changelist_url
from .filters import floor_time

#: The windows the page offers: failed for good within the last ...
SINCE = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7),
         "30d": timedelta(days=30), "all": None}
DEFAULT_SINCE = "24h"
#: Groups shown, largest first.
MAX_GROUPS = 100
#: Each window's sparkline: (bar width, bars). "all" spans the 30 days before now.
BARS = {"1h": (timedelta(minutes=5), 12), "24h": (timedelta(hours=1), 24),
        "7d": (timedelta(hours=6), 28), "30d": (timedelta(days=1), 30),
        "all": (timedelta(days=1), 30)}
#: The sparkline column's heading for each window.
SPAN = {"1h": "Last hour", "24h": "Last 24 hours", "7d": "Last 7 days", "30d": "Last 30 days",
        "all": "Last 30 days"}


def _timeline(since: str, now) -> Timeline:
    """The window's bars, on whole bar widths since the epoch (the last bar holds now), so
    the counts per bar come from SQL truncated to the minute, hour or day."""
    size, count = BARS[since]
    end = floor_time(now, size) + size
    return Timeline(start=end - size * count, size=size, count=count)


def _bar_labels(timeline: Timeline) -> list[str]:
    fmt = "%Y-%m-%d %H:%M" if timeline.size < timedelta(days=1) else "%Y-%m-%d"
    return [f"from {timezone.localtime(timeline.start + timeline.size * i).strftime(fmt)}"
            for i in range(timeline.count)]


@require_GET
def failures_view(request: HttpRequest, model_admin) -> TemplateResponse:
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    since = request.GET.get("since", DEFAULT_SINCE)
    if since not in SINCE:
        since = DEFAULT_SINCE
    window = SINCE[since]
    now = get_store().db_now()
    start = now - window if window is not None else None
    timeline = _timeline(since, now)
    groups, counts = grouped_failures(since=start, timeline=timeline)
    # The jobs still retrying after the same failure (pending, their last error in a group),
    # whenever they failed: a group may have no job failed for good yet.
    retrying, _ = grouped_failures(status=JobStatus.PENDING)
    by_key = {g.fingerprint: g for g in retrying}
    shown: list[tuple[FailureGroup, FailureGroup | None]] = [
        (g, by_key.pop(g.fingerprint, None)) for g in groups[:MAX_GROUPS]]
    only_retrying = sorted(by_key.values(), key=lambda g: -g.count)
    shown += [(g, g) for g in only_retrying[:max(0, MAX_GROUPS - len(shown))]]
    labels = _bar_labels(timeline)
    rows = []
    for g, r in shown:
        failed = g is not r
        rows.append({
            "group": g,
            "failed": g.count if failed else 0,
            "retrying": r.count if r is not None else 0,
            "jobs_url": changelist_url(status="failed", error_group=g.fingerprint),
            "retrying_url": changelist_url(status="pending", error_group=g.fingerprint),
            "example_url": reverse("admin:django_edgejobs_job_change",
                                   args=[g.example_job_id]),
            "retrying_example": r.example_job_id if r is not None else None,
            "spark": charts.sparkline(counts.get(g.fingerprint, [0] * timeline.count)
                                      if failed else [0] * timeline.count, labels),
            "first_seen": display.when(g.first_seen),
            "last_seen": display.when(g.last_seen),
        })
    context = {
        **model_admin.admin_site.each_context(request),
        "title": "Failures",
        "opts": model_admin.opts,
        "app_label": model_admin.opts.app_label,
        "rows": rows,
        "total": sum(g.count for g in groups),
        "total_retrying": sum(g.count for g in retrying),
        "hidden_groups": max(0, len(groups) - MAX_GROUPS),
        "since": since,
        "since_choices": list(SINCE),
        "span": SPAN[since],
        "now": now,
        "can_retry": model_admin.has_retry_permission(request),
        "can_cancel": model_admin.has_cancel_permission(request),
        "dashboard_url": reverse("admin:django_edgejobs_dashboard"),
        "failed_url": changelist_url(status="failed"),
    }
    return TemplateResponse(request, "admin/django_edgejobs/job/failures.html", context)
