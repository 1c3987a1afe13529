"""Workers: a read-only list with their alive/dead state."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlencode

from django.contrib import admin
from django.db.models import Q
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from ..conf import get_settings
from ..models import Worker
from . import display
from .base import GuardedActionsMixin, ReadOnlyMixin, UrlInputMixin, time_column
from .filters import db_now


def _threshold():
    return db_now() - timedelta(seconds=get_settings().WORKER_TIMEOUT)


class StateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("alive", "alive"), ("dead", "dead (silent)"), ("stopped", "stopped")]

    def queryset(self, request, queryset):
        if self.value() == "alive":
            return queryset.filter(stopped_at__isnull=True, last_heartbeat__gte=_threshold())
        if self.value() == "dead":
            return queryset.filter(stopped_at__isnull=True, last_heartbeat__lt=_threshold())
        if self.value() == "stopped":
            return queryset.filter(~Q(stopped_at=None))
        return queryset


def state(worker: Worker) -> str:
    if worker.stopped_at is not None:
        return "stopped"
    timeout = timedelta(seconds=get_settings().WORKER_TIMEOUT)
    return "alive" if worker.last_heartbeat >= timezone.now() - timeout else "dead"


@admin.register(Worker)
class WorkerAdmin(GuardedActionsMixin, UrlInputMixin, ReadOnlyMixin, admin.ModelAdmin):
    change_list_template = "admin/django_edgejobs/change_list_wide.html"
    list_display = ["id", "state_badge", "hostname", "pid", "queues_display", "concurrency",
                    "started_at_when", "heartbeat_age", "jobs_done", "running_link"]
    list_filter = [StateFilter]
    search_fields = ["id", "hostname"]
    actions = None

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    @admin.display(description="state")
    def state_badge(self, worker: Worker) -> str:
        value = state(worker)
        return format_html('<span class="ej-badge ej-{}">{}</span>', value, value)

    @admin.display(description="queues")
    def queues_display(self, worker: Worker) -> str:
        return ", ".join(str(q) for q in worker.queues or [])

    started_at_when = time_column("started_at", "started")

    @admin.display(description="heartbeat", ordering="last_heartbeat")
    def heartbeat_age(self, worker: Worker) -> str:
        return f"{display.age(worker.last_heartbeat, timezone.now())} ago"

    @admin.display(description="running")
    def running_link(self, worker: Worker) -> str:
        url = reverse("admin:django_edgejobs_job_changelist")
        return format_html('<a href="{}?{}">jobs</a>', url, urlencode({"worker": worker.id}))
