"""What every admin of this app shares."""

from __future__ import annotations

from typing import Any, cast

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest


class GuardedActionsMixin:
    """A POST that names an action the user may not run gets a 403 (Django alone answers
    "no action selected" with a redirect, which hides a forged request)."""

    def changelist_view(self, request: HttpRequest, extra_context=None):
        model_admin: Any = self  # a mixin of ModelAdmin
        if request.method == "POST" and "index" in request.POST:
            known = {a.name for a in model_admin._get_base_actions()} | {"delete_selected"}
            allowed = set(model_admin.get_actions(request))
            if any(n in known and n not in allowed for n in request.POST.getlist("action")):
                raise PermissionDenied
        return super().changelist_view(request, extra_context)  # type: ignore[misc]


class ReadOnlyMixin:
    """Nothing here is added or edited through a form: state changes go through actions."""

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


def log_change(request: HttpRequest, objects, message: str) -> None:
    from django.contrib.admin.models import CHANGE, LogEntry

    LogEntry.objects.log_actions(user_id=cast(int, request.user.pk), queryset=objects,
                                 action_flag=CHANGE,
                                 change_message=message)


NO_FACETS = admin.ShowFacets.NEVER
