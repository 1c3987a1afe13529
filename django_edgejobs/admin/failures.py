"""The Failures page, ``admin:django_edgejobs_failures``: failed jobs grouped by what went
wrong (``services/failures.py``). The page only reads (GET). Its "Retry all" buttons post the
job list's own Retry action over the group (the list's ``error_group`` filter, select across),
so permission, confirmation above 100 jobs, the 10,000-job cap and the audit log are the
action's."""

from __future__ import annotations

from datetime import timedelta

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.http import require_GET

from ..services.failures import failure_groups
from ..store import get_store
from . import display
from .dashboard import changelist_url

#: The windows the page offers: failed for good within the last ...
SINCE = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7),
         "30d": timedelta(days=30), "all": None}
DEFAULT_SINCE = "24h"
#: Groups shown, largest first.
MAX_GROUPS = 100


@require_GET
def failures_view(request: HttpRequest, model_admin) -> TemplateResponse:
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    since = request.GET.get("since", DEFAULT_SINCE)
    if since not in SINCE:
        since = DEFAULT_SINCE
    window = SINCE[since]
    now = get_store().db_now()
    groups = failure_groups(since=now - window if window is not None else None)
    rows = [{
        "group": g,
        "jobs_url": changelist_url(status="failed", error_group=g.fingerprint),
        "example_url": reverse("admin:django_edgejobs_job_change", args=[g.example_job_id]),
        "first_seen": display.when(g.first_seen),
        "last_seen": display.when(g.last_seen),
    } for g in groups[:MAX_GROUPS]]
    context = {
        **model_admin.admin_site.each_context(request),
        "title": "Failures",
        "opts": model_admin.opts,
        "app_label": model_admin.opts.app_label,
        "rows": rows,
        "total": sum(g.count for g in groups),
        "hidden_groups": max(0, len(groups) - MAX_GROUPS),
        "since": since,
        "since_choices": list(SINCE),
        "now": now,
        "can_retry": model_admin.has_retry_permission(request),
        "dashboard_url": reverse("admin:django_edgejobs_dashboard"),
        "failed_url": changelist_url(status="failed"),
    }
    return TemplateResponse(request, "admin/django_edgejobs/job/failures.html", context)
