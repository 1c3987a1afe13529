"""Running an admin action over jobs: permission, confirmation above a cap (and always for a
whole failure group), the service call, messages and ``LogEntry`` rows. The services do the
writing (STYLE.md principle 10)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from django.contrib import messages
from django.contrib.admin import helpers
from django.contrib.admin.models import CHANGE, LogEntry
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.http import HttpRequest
from django.template.response import TemplateResponse

#: Above this many rows an action asks for confirmation first.
CONFIRM_ABOVE = 100
#: One action run changes at most this many rows; run it again for more.
MAX_ROWS = 10_000


@dataclass(frozen=True)
class JobAction:
    name: str
    verb: str  # "retried"
    label: str  # "Retry"
    permission: str  # the ModelAdmin's has_<permission>_permission
    service: Callable[[list], list]  # ids -> ids changed
    allowed: str  # what the service accepts, said to the user
    always_confirm: bool = False
    log_change: bool = True  # False: the service logs itself (a deletion logs before it acts)


def whole_group(request: HttpRequest) -> bool:
    """All of a failure group (the Failures page's buttons): always asked first, since the
    page's counts are from a moment ago and the confirmation shows what the action takes now."""
    return request.POST.get("select_across") == "1" and bool(request.GET.get("error_group"))


def require(model_admin, request: HttpRequest, action: JobAction) -> None:
    if not getattr(model_admin, f"has_{action.permission}_permission")(request):
        raise PermissionDenied


def run(model_admin, request: HttpRequest, queryset, action: JobAction,
        *, confirm_page: bool = True):
    """Apply ``action`` to the jobs of ``queryset``; return a response (a confirmation page)
    or None (done: the caller redirects)."""
    require(model_admin, request, action)
    ids = list(queryset.order_by().values_list("id", flat=True)[:MAX_ROWS + 1])
    truncated = len(ids) > MAX_ROWS
    ids = ids[:MAX_ROWS]
    needs_confirmation = (action.always_confirm or whole_group(request)
                          or len(ids) > CONFIRM_ABOVE)
    if confirm_page and needs_confirmation and request.POST.get("confirm") != "yes":
        return confirmation(model_admin, request, queryset, action, len(ids), truncated)
    changed = action.service(ids)
    model = model_admin.model
    if changed and action.log_change:
        rows = model._default_manager.filter(id__in=changed).only("id", "type", "status")
        cast(Any, LogEntry.objects).log_actions(  # single_object is a bool, not a Literal
            user_id=request.user.pk, queryset=rows, action_flag=CHANGE,
            change_message=f"{action.label} (admin action)", single_object=len(changed) == 1)
    if changed:
        model_admin.message_user(
            request, f"{action.label}: {len(changed)} job{'s' if len(changed) != 1 else ''} "
                     f"{action.verb}.", messages.SUCCESS)
    done = set(changed)
    left = [i for i in ids if i not in done]
    if left:
        by_status = (model._default_manager.filter(id__in=left).order_by().values("status")
                     .annotate(n=Count("pk")).order_by("status"))
        detail = ", ".join(f"{row['n']} {row['status']}" for row in by_status)
        model_admin.message_user(
            request, f"{len(left)} job{'s' if len(left) != 1 else ''} not {action.verb} "
                     f"({detail or 'gone'}): {action.allowed}.", messages.WARNING)
    if truncated:
        model_admin.message_user(
            request, f"Only the first {MAX_ROWS:,} jobs were handled; run the action again for "
                     "the rest.", messages.WARNING)
    return None


def confirmation(model_admin, request: HttpRequest, queryset, action: JobAction,
                 count: int, truncated: bool) -> TemplateResponse:
    opts = model_admin.opts
    by_status = (queryset.order_by().values("status").annotate(n=Count("pk")).order_by("status")
                 if count <= MAX_ROWS else [])
    context = {
        **model_admin.admin_site.each_context(request),
        "title": f"{action.label}: are you sure?",
        "opts": opts,
        "app_label": opts.app_label,
        "action": action,
        "action_name": request.POST.get("action", ""),
        "count": count,
        "truncated": truncated,
        "max_rows": MAX_ROWS,
        "by_status": by_status,
        "sample": list(queryset.only("id", "type", "status", "created_at")[:20]),
        "selected": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
        "select_across": request.POST.get("select_across", "0"),
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "confirm_above": CONFIRM_ABOVE,
        "whole_group": whole_group(request),
    }
    return TemplateResponse(request, "admin/django_edgejobs/job/action_confirmation.html",
                            context)
