"""Jobs and their events: read-only lists, the job's detail page, actions, the dashboard URL."""

from __future__ import annotations

import contextlib
import re
import uuid
from typing import Any, cast

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import HttpRequest, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from ..exceptions import InvalidPayload
from ..models import Batch, CronSchedule, Job, JobEvent, JobStatus, WaitToken
from ..models.job import DEPENDENCIES
from ..services import lifecycle
from ..services.jobs import filter_tags, parse_job_id
from ..services.tokens import complete_token
from ..services.validation import validate_tags
from ..store import get_store
from ..store.search import error_contains, payload_contains
from . import actions as job_actions
from . import display
from .base import (
    NO_FACETS,
    GuardedActionsMixin,
    ReadOnlyMixin,
    UrlInputMixin,
    log_change,
    time_column,
)
from .batches import BatchFilter
from .dashboard import dashboard_view
from .dependencies import dependencies_of
from .failures import failures_view
from .filters import (
    AttentionFilter,
    ErrorGroupFilter,
    FinishedFilter,
    QueueFilter,
    StatusFilter,
    TagFilter,
    TypeFilter,
    WorkerFilter,
)
from .listing import CappedPaginator, date_hierarchy
from .queues import queue_action_view
from .tokens import OutputForm

MAX_EVENTS = 200
#: Characters of the last error the job list shows (the rest in the cell's title).
ERROR_CHARS = 80
_ID_PREFIX = re.compile(r"[0-9a-fA-F]{4,31}")
MAX_TOKENS = 50
#: The shortest plain search term also looked for in the error text (a trigram is 3).
MIN_TEXT_SEARCH = 3


def tag_condition(tag: str):
    """A boolean expression: the job has this tag (the store's SQL for the vendor)."""
    from django.db.models import BooleanField, ExpressionWrapper
    from django.db.models.expressions import RawSQL

    sql, params = get_store().tag_condition(validate_tags([tag], where="search"), "any")
    return ExpressionWrapper(RawSQL(sql, params), output_field=BooleanField())


def id_prefix_range(term: str) -> tuple[uuid.UUID, uuid.UUID] | None:
    """The smallest and the largest id that start with ``term`` (4 to 31 hex digits, dashes
    as in the printed id allowed): a range look-up on the primary key. None otherwise."""
    digits = term.replace("-", "")
    if not _ID_PREFIX.fullmatch(digits):
        return None
    digits = digits.lower()
    return uuid.UUID(digits.ljust(32, "0")), uuid.UUID(digits.ljust(32, "f"))


def badge(status: str) -> str:
    return format_html('<span class="ej-badge ej-{}">{}</span>', status, status)


def _delete_jobs(model_admin, request: HttpRequest):
    def delete(ids: list) -> list:
        # A job being run is not deleted from under its worker: cancel cannot stop it either.
        qs = Job.objects.filter(id__in=ids).exclude(status=JobStatus.PROCESSING)
        gone = list(qs.values_list("id", flat=True))
        if gone:
            rows = Job.objects.filter(id__in=gone)
            model_admin.log_deletions(request, rows.only("id", "type", "status"))
            # The status again: a worker may have claimed one of them meanwhile.
            model_admin.delete_queryset(request, rows.exclude(status=JobStatus.PROCESSING))
        return gone

    return delete


ACTIONS = {
    "retry": job_actions.JobAction(
        "retry", "retried", "Retry", "retry", lifecycle.retry_jobs,
        "only failed or cancelled jobs can be retried (never one that is processing)"),
    "cancel": job_actions.JobAction(
        "cancel", "cancelled", "Cancel", "cancel", lifecycle.cancel_jobs,
        "only pending or waiting jobs can be cancelled"),
    "run_now": job_actions.JobAction(
        "run_now", "made due now", "Run now", "run", lifecycle.run_jobs_now,
        "only pending jobs scheduled for later, and jobs waiting for a time, can be run now"),
}


@admin.register(Job)
class JobAdmin(GuardedActionsMixin, UrlInputMixin, ReadOnlyMixin, admin.ModelAdmin):
    list_display = ["short_id", "status_badge", "type_display", "error_display", "queue",
                    "attempts_display", "progress_bar", "run_at_display", "created_display",
                    "duration_display", "worker"]
    list_display_links = ["short_id"]
    list_filter = [StatusFilter, QueueFilter, TypeFilter, TagFilter, AttentionFilter,
                   FinishedFilter, WorkerFilter, ErrorGroupFilter, BatchFilter]
    search_fields = ["type"]  # shows the search box; get_search_results does the work
    search_help_text = ("A job id or its first characters (4 or more), a type, an idempotency "
                        "key or a tag (exact), or words of the last error (3 characters or "
                        "more). \"tag:NAME\", \"error:TEXT\" and \"payload:TEXT\" search one "
                        "field only.")
    date_hierarchy = "created_at"
    show_full_result_count = False
    show_facets = NO_FACETS
    paginator = CappedPaginator
    list_per_page = 50
    ordering = ["-created_at"]
    actions = ["retry_selected", "cancel_selected", "run_now_selected", "delete_selected_jobs"]
    change_list_template = "admin/django_edgejobs/job/change_list.html"

    # -- permissions (the actions' ``permissions=`` name these) ---------------------------

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("django_edgejobs.retry_job")

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("django_edgejobs.cancel_job")

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        if obj is not None and obj.status == JobStatus.PROCESSING:
            return False  # its handler is running: deleting the row would not stop it
        return super().has_delete_permission(request, obj)

    def has_run_permission(self, request: HttpRequest) -> bool:
        """Run now changes a job's run time: the model's change permission."""
        return request.user.has_perm("django_edgejobs.change_job")

    # -- the list -------------------------------------------------------------------------

    @admin.display(description="id", ordering="id")
    def short_id(self, job: Job) -> str:
        return str(job.id)[:8]

    @admin.display(description="status", ordering="status")
    def status_badge(self, job: Job) -> str:
        return badge(job.status)

    @admin.display(description="type", ordering="type")
    def type_display(self, job: Job) -> str:
        """The type, and the priority when it is not 0 (a column of its own did not fit)."""
        if not job.priority:
            return job.type
        return format_html('{} <span class="ej-muted">priority {}</span>', job.type,
                           job.priority)

    @admin.display(description="error")
    def error_display(self, job: Job) -> str:
        """The last error (class: message) of a failed job or one waiting for its retry."""
        text = job.last_error or ""
        if not text or job.status not in (JobStatus.FAILED, JobStatus.PENDING):
            return "—"
        short = text if len(text) <= ERROR_CHARS else text[:ERROR_CHARS - 1] + "…"
        return format_html('<span class="ej-last-error" title="{}">{}</span>', text[:2000], short)

    @admin.display(description="attempts")
    def attempts_display(self, job: Job) -> str:
        return f"{job.attempts}/{job.max_attempts}"

    @admin.display(description="progress")
    def progress_bar(self, job: Job) -> str:
        if job.progress is None:
            return "—"
        return format_html('<progress class="ej-progress" max="100" value="{}">{}%</progress> {}%',
                           job.progress, job.progress, job.progress)

    run_at_display = time_column("run_at", "run at")
    created_display = time_column("created_at", "created")

    @admin.display(description="duration")
    def duration_display(self, job: Job) -> str:
        if job.duration is not None:
            return display.human_duration(job.duration)
        if job.status == JobStatus.PROCESSING and job.started_at:
            return f"running {display.human_duration(timezone.now() - job.started_at)}"
        return "—"

    @admin.display(description="worker")
    def worker(self, job: Job) -> str:
        return job.lease_owner or "—"

    def get_queryset(self, request: HttpRequest):
        qs = super().get_queryset(request)
        match = getattr(request, "resolver_match", None)
        if match is not None and match.url_name == "django_edgejobs_job_changelist":
            # The list never shows the JSON columns: leave them in the database.
            qs = qs.defer("payload", "result", "error_history", "steps")
        return qs

    def get_search_results(self, request: HttpRequest, queryset, search_term: str):
        """Exact matches of the indexed fields, plus the error text for terms of 3 characters
        or more (PostgreSQL: a trigram index; elsewhere a scan of one capped page); ``tag:``,
        ``error:`` and ``payload:`` search one thing only."""
        term = search_term.strip()
        if not term:
            return queryset, False
        if term.startswith("tag:"):
            try:
                return filter_tags(queryset, [term[4:]], "any"), False
            except ValueError:
                return queryset.none(), False
        if term.startswith("error:"):
            text = term[6:].strip()
            return (queryset.filter(error_contains(text)) if text else queryset), False
        if term.startswith("payload:"):
            text = term[8:].strip()
            if not request.user.has_perm("django_edgejobs.change_job"):
                # The raw text holds the values of redacted keys: an oracle for secrets.
                self.message_user(request, "Searching payloads needs the permission to change "
                                           "jobs (their values under redacted keys are "
                                           "searched too).", messages.WARNING)
                return queryset.none(), False
            return (queryset.filter(payload_contains(text)) if text else queryset), False
        job_id = parse_job_id(term)
        if job_id is not None:
            return queryset.filter(id=job_id), False
        condition = Q(type=term) | Q(idempotency_key=term)
        ids = id_prefix_range(term)
        if ids is not None:  # the list shows 8 characters: those find the job
            condition |= Q(id__range=ids)
        with contextlib.suppress(ValueError):  # not a possible tag: the other fields still match
            condition |= Q(tag_condition(term))
        if len(term) >= MIN_TEXT_SEARCH:
            condition |= error_contains(term)
        return queryset.filter(condition), False

    def changelist_view(self, request: HttpRequest, extra_context=None):
        extra_context = {**(extra_context or {}),
                         "dashboard_url": reverse("admin:django_edgejobs_dashboard"),
                         "failures_url": reverse("admin:django_edgejobs_failures")}
        response = super().changelist_view(request, extra_context)
        context = getattr(response, "context_data", None)
        if context and context.get("cl") is not None:
            # Django's own tag scans a month of rows; this one probes ranges (listing.py).
            context["edgejobs_hierarchy"] = lambda: date_hierarchy(context["cl"])
        return response

    def get_actions(self, request: HttpRequest, action_location=admin.ActionLocation.CHANGE_LIST):
        actions = super().get_actions(request, action_location=action_location)
        actions.pop("delete_selected", None)  # delete_selected_jobs confirms with a count
        return actions

    # -- actions ----------------------------------------------------------------------------

    @admin.action(permissions=["retry"], description="Retry selected jobs")
    def retry_selected(self, request: HttpRequest, queryset):
        return job_actions.run(self, request, queryset, ACTIONS["retry"])

    @admin.action(permissions=["cancel"], description="Cancel selected jobs")
    def cancel_selected(self, request: HttpRequest, queryset):
        return job_actions.run(self, request, queryset, ACTIONS["cancel"])

    @admin.action(permissions=["run"], description="Run selected jobs now")
    def run_now_selected(self, request: HttpRequest, queryset):
        return job_actions.run(self, request, queryset, ACTIONS["run_now"])

    @admin.action(permissions=["delete"], description="Delete selected jobs")
    def delete_selected_jobs(self, request: HttpRequest, queryset):
        action = job_actions.JobAction(
            "delete", "deleted", "Delete", "delete", _delete_jobs(self, request),
            "a processing job is not deleted (it is still running)", always_confirm=True,
            log_change=False)
        return job_actions.run(self, request, queryset, action)

    # -- the detail page ------------------------------------------------------------------

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("dashboard/", view(lambda request: dashboard_view(request, self)),
                 name="django_edgejobs_dashboard"),
            path("failures/", view(lambda request: failures_view(request, self)),
                 name="django_edgejobs_failures"),
            path("queues/action/", view(queue_action_view),
                 name="django_edgejobs_queue_action"),
            *super().get_urls(),
        ]

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "",
                    extra_context=None):
        job = self.get_object(request, unquote(object_id))
        # The permission first, as Django's change view does: a user who may not see jobs
        # gets a 403 whether or not the id exists (no probing for ids).
        if not self.has_view_permission(request, job):
            raise PermissionDenied
        if job is None:
            # A private helper of ModelAdmin (the stubs do not know it): the usual redirect.
            return cast(Any, self)._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if request.method == "POST":
            return self._detail_action(request, job)
        if request.method not in ("GET", "HEAD"):
            return HttpResponseNotAllowed(["GET", "POST"])
        return TemplateResponse(request, "admin/django_edgejobs/job/detail.html",
                                {**self._detail_context(request, job), **(extra_context or {})})

    def _detail_action(self, request: HttpRequest, job: Job):
        if request.POST.get("action") == "complete_token":
            self._complete_token(request, job)
            return HttpResponseRedirect(request.path)
        action = ACTIONS.get(request.POST.get("action", ""))
        if action is None:
            raise PermissionDenied  # not an action of this page: refuse, change nothing
        job_actions.run(self, request, Job.objects.filter(pk=job.pk), action, confirm_page=False)
        return HttpResponseRedirect(request.path)

    def _complete_token(self, request: HttpRequest, job: Job) -> None:
        """The waiting job's token, completed with the output typed on its page."""
        if not request.user.has_perm("django_edgejobs.change_waittoken"):
            raise PermissionDenied
        form = OutputForm(request.POST)
        if job.wait_token == DEPENDENCIES:
            self.message_user(request, "Token not completed: the job waits for its "
                                       "dependencies, not for a token.", messages.ERROR)
            return
        if not job.wait_token or not form.is_valid():
            why = ("; ".join(str(e) for field in form.errors.values() for e in field)
                   or "the job waits for no token")
            self.message_user(request, f"Token not completed: {why}.", messages.ERROR)
            return
        try:
            done = complete_token(job.wait_token, form.cleaned_data["output"])
        except InvalidPayload as exc:
            self.message_user(request, f"Token not completed: {exc}", messages.ERROR)
            return
        if not done:
            self.message_user(request, "Token not completed: it was completed or timed out "
                                       "already, or the job no longer waits.", messages.WARNING)
            return
        log_change(request, WaitToken.objects.filter(id=job.wait_token),
                   "Completed (from the job's page)")
        self.message_user(request, f"Token {job.wait_token} completed; the job resumes.",
                          messages.SUCCESS)

    def _detail_context(self, request: HttpRequest, job: Job) -> dict:
        now = timezone.now()
        keys = display.redact_keys()
        events = list(JobEvent.objects.filter(job_id=job.id).order_by("-id")[:MAX_EVENTS + 1])
        errors = [
            {"attempt": e.get("attempt"), "at": display.when(e.get("at")),
             "error": display.truncate(str(e.get("error", "")), display.MAX_STRING),
             "traceback": display.truncate_start(str(e.get("traceback") or ""))}
            for e in reversed(job.error_history or []) if isinstance(e, dict)
        ]
        schedules = [t[5:] for t in (job.tags or []) if isinstance(t, str)
                     and t.startswith("cron:")]
        schedule = CronSchedule.objects.filter(name__in=schedules).first() if schedules else None
        tokens = list(job.tokens.order_by("-created_at")[:MAX_TOKENS])
        buttons = []
        if job.status in (JobStatus.FAILED, JobStatus.CANCELLED) and self.has_retry_permission(
                request):
            buttons.append(("retry", "Retry"))
        if job.status in (JobStatus.PENDING, JobStatus.WAITING) and self.has_cancel_permission(
                request):
            buttons.append(("cancel", "Cancel"))
        runnable = ((job.status == JobStatus.PENDING and job.run_at > now)
                    or (job.status == JobStatus.WAITING and not job.wait_token))
        if runnable and self.has_run_permission(request):
            buttons.append(("run_now", "Run now"))
        complete_form = None
        waits_for_token = bool(job.wait_token) and job.wait_token != DEPENDENCIES
        if (job.status == JobStatus.WAITING and waits_for_token
                and request.user.has_perm("django_edgejobs.change_waittoken")
                and WaitToken.objects.filter(id=job.wait_token,
                                         status=WaitToken.Status.WAITING).exists()):
            complete_form = OutputForm()
        dependencies = dependencies_of(job)
        return {
            **self.admin_site.each_context(request),
            "title": f"Job {job.type}",
            "graph": dependencies.graph,
            "waiting_for_dependencies": dependencies.waiting_for,
            "batch": Batch.objects.filter(id=job.batch_id).first() if job.batch_id else None,
            "complete_form": complete_form,
            "subtitle": str(job.id),
            "opts": self.opts,
            "app_label": self.opts.app_label,
            "original": job,
            "job": job,
            "has_view_permission": True,
            "has_delete_permission": self.has_delete_permission(request, job),
            "buttons": buttons,
            "status_badge": badge(job.status),
            "payload": display.pretty_json(job.payload, keys=keys),
            "result": None if job.result is None else display.pretty_json(job.result, keys=keys),
            "steps": display.pretty_json(job.steps, keys=keys) if job.steps else None,
            "last_error": display.truncate(job.last_error, display.MAX_STRING),
            "errors": errors,
            "events": [(e, display.short_json(e.data, 300)) for e in events[:MAX_EVENTS]],
            "more_events": len(events) > MAX_EVENTS,
            "tokens": [(t, display.short_json(t.output, 200)) for t in tokens],
            "schedule": schedule,
            "tags": display.short_json(job.tags, 500),
            "duration": display.human_duration(job.duration) if job.duration else None,
            "wait_time": (display.human_duration(job.started_at - job.run_at)
                          if job.started_at and job.started_at >= job.run_at else None),
            "events_url": reverse("admin:django_edgejobs_jobevent_changelist")
                          + f"?job_id={job.id}",
        }


@admin.register(JobEvent)
class JobEventAdmin(GuardedActionsMixin, UrlInputMixin, ReadOnlyMixin, admin.ModelAdmin):
    change_list_template = "admin/django_edgejobs/change_list_wide.html"
    list_display = ["id", "created_at", "type", "job_link", "data_display"]
    list_filter = ["type"]
    search_fields = ["job_id"]
    search_help_text = "A job id (exact)."
    show_full_result_count = False
    show_facets = NO_FACETS
    paginator = CappedPaginator
    list_per_page = 100
    ordering = ["-id"]
    actions = None
    extra_lookups = ("job_id",)  # the job detail page's "All events" link

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def get_search_results(self, request: HttpRequest, queryset, search_term: str):
        if not search_term.strip():
            return queryset, False
        job_id = parse_job_id(search_term.strip())
        return (queryset.filter(job_id=job_id) if job_id else queryset.none()), False

    @admin.display(description="job")
    def job_link(self, event: JobEvent) -> str:
        url = reverse("admin:django_edgejobs_job_change", args=[event.job_id])
        return format_html('<a href="{}">{}</a>', url, str(event.job_id)[:8])

    @admin.display(description="data")
    def data_display(self, event: JobEvent) -> str:
        return display.short_json(event.data, 160)

    @admin.display(description="data")
    def data_pretty(self, event: JobEvent) -> str:
        return format_html("<pre>{}</pre>", display.pretty_json(event.data))

    readonly_fields = ["id", "job_link", "type", "created_at", "data_pretty"]
    fields = tuple(readonly_fields)
