"""Batches (``enqueue_batch``): a read-only list and a detail page, each with the batch's
progress, and the job list's ``?batch=<id>`` filter (``BatchFilter``).

Nothing here changes a batch: a batch is made by ``enqueue_batch`` and finishes with its
jobs, so the admin neither adds, edits nor deletes one (its jobs' actions are the job list's).

Counts: the list reads the jobs of the page's batches in one grouped query (batch, status),
however many batches the page shows; the detail page reads one batch's (``batch_status``).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable
from typing import Any, cast
from urllib.parse import urlencode

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.http import HttpRequest, HttpResponseNotAllowed
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from ..models import Batch, Job
from ..services.jobs import parse_job_id
from ..services.workflows import batch_status
from .base import NO_FACETS, GuardedActionsMixin, ReadOnlyMixin, UrlInputMixin, time_column
from .listing import CappedPaginator

#: The progress bar's parts, in order, with the colours of the badges (``admin.css``); what
#: is left of the bar (grey) is pending: not finished yet (pending, waiting or processing).
PARTS = (("completed", "#3b8a3e"), ("failed", "#c0392b"), ("cancelled", "#a0a0a0"))
TRACK = "#e1e1e1"


def batch_jobs_url(batch_id: uuid.UUID, **params: str) -> str:
    """The job list filtered to a batch's jobs (and to ``params``, e.g. ``status``)."""
    return (reverse("admin:django_edgejobs_job_changelist") + "?"
            + urlencode({"batch": str(batch_id), **params}))


def counts_of(batches: Iterable[Batch]) -> dict[uuid.UUID, dict[str, int]]:
    """Each batch's counts, as ``batch_counts`` has them (total, pending and per finished
    status), from one grouped query for them all."""
    batches = list(batches)
    by_batch: dict[uuid.UUID, dict[str, int]] = defaultdict(dict)
    if batches:
        rows = (Job.objects.filter(batch_id__in=[b.id for b in batches])
                .values("batch_id", "status").annotate(n=Count("id"))
                .values_list("batch_id", "status", "n"))
        for batch_id, status, n in rows:
            by_batch[batch_id][status] = n
    return {batch.id: batch.counts(by_batch.get(batch.id, {})) for batch in batches}


def progress_bar(counts: dict[str, Any], width: int = 160, height: int = 12) -> SafeString:
    """The batch's finished parts side by side on a grey track, each titled with its count.
    Only numbers and this module's words and colours go in."""
    total = max(int(counts["total"]), 1)
    parts, x = [], 0.0
    for name, colour in PARTS:
        n = int(counts.get(name, 0))
        if n <= 0:
            continue
        w = width * n / total
        parts.append((f"{x:.1f}", f"{w:.1f}", height, colour, n, name))
        x += w
    summary = ", ".join(f"{int(counts.get(name, 0))} {name}" for name, _ in PARTS)
    label = f"{summary}, {int(counts['pending'])} pending, of {int(counts['total'])}"
    return format_html(
        '<svg class="ej-batch-progress" role="img" aria-label="{}" width="{}" height="{}" '
        'viewBox="0 0 {} {}" xmlns="http://www.w3.org/2000/svg"><title>{}</title>'
        '<rect x="0" y="0" width="{}" height="{}" fill="{}"/>{}</svg>',
        label, width, height, width, height, label, width, height, TRACK,
        format_html_join("", '<rect x="{}" y="0" width="{}" height="{}" fill="{}">'
                             "<title>{} {}</title></rect>", parts))


def state_badge(finished: bool) -> str:
    state, colour = ("finished", "completed") if finished else ("running", "processing")
    return format_html('<span class="ej-badge ej-{}">{}</span>', colour, state)


class BatchFilter(admin.SimpleListFilter):
    """The jobs of one batch (``?batch=<id>``, linked from the batch's page). Shown in the
    filters only while it is set, named by the batch (no list of every batch)."""

    title = "batch"
    parameter_name = "batch"

    def lookups(self, request, model_admin):
        value = self.value()
        batch_id = parse_job_id(value)
        batch = Batch.objects.filter(id=batch_id).first() if batch_id else None
        # Named by the batch; an unknown value is still shown (it selects no job).
        return [(value, str(batch) if batch is not None else value)] if value else []

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        batch_id = parse_job_id(self.value())
        return queryset.filter(batch_id=batch_id) if batch_id else queryset.none()


@admin.register(Batch)
class BatchAdmin(GuardedActionsMixin, UrlInputMixin, ReadOnlyMixin, admin.ModelAdmin):
    change_list_template = "admin/django_edgejobs/change_list_wide.html"
    list_display = ["name", "created_display", "total", "progress", "counts", "state"]
    list_display_links = ["name"]
    search_fields = ["description"]
    search_help_text = "A batch id (exact) or words of its description."
    show_full_result_count = False
    show_facets = NO_FACETS
    paginator = CappedPaginator
    list_per_page = 50
    ordering = ["-created_at"]
    actions = None

    created_display = time_column("created_at", "created")

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        """The batch's own view permission, or the jobs': a batch shows only its jobs'
        counts and links to them, which a viewer of jobs sees anyway."""
        return (super().has_view_permission(request, obj)
                or request.user.has_perm("django_edgejobs.view_job"))

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def get_search_results(self, request: HttpRequest, queryset, search_term: str):
        term = search_term.strip()
        if not term:
            return queryset, False
        batch_id = parse_job_id(term)
        if batch_id is not None:
            return queryset.filter(id=batch_id), False
        return queryset.filter(description__icontains=term), False

    def get_changelist_instance(self, request: HttpRequest):
        """The page's batches get their counts from one grouped query (``counts_of``): the
        columns read them from the rows, no query per row."""
        changelist = super().get_changelist_instance(request)
        rows = list(changelist.result_list)  # evaluates (and caches) the page's queryset
        counts = counts_of(rows)
        for batch in rows:
            batch.edgejobs_counts = counts[batch.id]
        return changelist

    @staticmethod
    def _counts(batch: Batch) -> dict[str, int]:
        found = getattr(batch, "edgejobs_counts", None)
        return found if found is not None else counts_of([batch])[batch.id]

    @admin.display(description="batch", ordering="description")
    def name(self, batch: Batch) -> str:
        if batch.description:
            return batch.description
        return f"batch {str(batch.id)[:8]}"

    @admin.display(description="progress")
    def progress(self, batch: Batch) -> str:
        return progress_bar(self._counts(batch))

    @admin.display(description="jobs")
    def counts(self, batch: Batch) -> str:
        c = self._counts(batch)
        return format_html(
            '<a href="{}">{} completed, {} failed, {} cancelled, {} pending</a>',
            batch_jobs_url(batch.id), c["completed"], c["failed"], c["cancelled"],
            c["pending"])

    @admin.display(description="status")
    def state(self, batch: Batch) -> str:
        return state_badge(self._counts(batch)["pending"] == 0)

    # -- the detail page ------------------------------------------------------------------

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "",
                    extra_context=None):
        batch = self.get_object(request, unquote(object_id))
        # The permission first, as the job page does: no probing for ids.
        if not self.has_view_permission(request, batch):
            raise PermissionDenied
        if request.method not in ("GET", "HEAD"):
            return HttpResponseNotAllowed(["GET"])  # the page changes nothing
        if batch is None:
            return cast(Any, self)._get_obj_does_not_exist_redirect(request, self.opts,
                                                                    object_id)
        return TemplateResponse(request, "admin/django_edgejobs/batch/detail.html",
                                {**self._detail_context(request, batch),
                                 **(extra_context or {})})

    def _detail_context(self, request: HttpRequest, batch: Batch) -> dict:
        status = batch_status(batch)
        counts = {"total": status.total, "pending": status.pending,
                  "completed": status.completed, "failed": status.failed,
                  "cancelled": status.cancelled}
        jobs = {j.id: j for j in Job.objects.filter(id__in=status.callback_ids)
                .only("id", "type", "status")}
        callbacks = [(label, job_id, jobs.get(job_id)) for label, job_id in
                     (("On complete", status.on_complete_job),
                      ("On success", status.on_success_job)) if job_id is not None]
        return {
            **self.admin_site.each_context(request),
            "title": str(batch),
            "subtitle": str(batch.id),
            "opts": self.opts,
            "app_label": self.opts.app_label,
            "original": batch,
            "batch": batch,
            "status": status,
            "state_badge": state_badge(status.status == "finished"),
            "progress": progress_bar(counts, width=480, height=18),
            "finished": status.total - status.pending,
            "rows": [(name, counts[name], batch_jobs_url(batch.id, status=name))
                     for name in ("completed", "failed", "cancelled")],
            "callbacks": callbacks,
            "jobs_url": batch_jobs_url(batch.id),
            "has_view_permission": True,
        }
