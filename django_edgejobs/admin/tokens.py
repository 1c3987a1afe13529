"""Wait tokens: a read-only list and the "complete" action (JSON output, complete_token)."""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from ..exceptions import InvalidPayload
from ..models import WaitToken
from ..services.jobs import parse_job_id
from ..services.tokens import complete_token
from . import display
from .base import (
    NO_FACETS,
    GuardedActionsMixin,
    ReadOnlyMixin,
    UrlInputMixin,
    log_change,
    time_column,
)
from .listing import CappedPaginator

MAX_COMPLETE = 100


class OutputForm(forms.Form):
    output = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 8, "cols": 80}), required=False,
        help_text='JSON, e.g. {"approved": true}. Empty means null.')

    def clean_output(self):
        text = self.cleaned_data["output"].strip()
        if not text:
            return None
        try:
            return json.loads(text)
        except ValueError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc}") from None


@admin.register(WaitToken)
class WaitTokenAdmin(GuardedActionsMixin, UrlInputMixin, ReadOnlyMixin, admin.ModelAdmin):
    change_list_template = "admin/django_edgejobs/change_list_wide.html"
    list_display = ["id", "status_badge", "job_link", "created_at_when", "timeout_at_when",
                    "completed_at_when", "tags_display"]
    list_filter = ["status"]
    search_fields = ["id"]
    search_help_text = "A token id or a job id (exact)."
    show_full_result_count = False
    show_facets = NO_FACETS
    paginator = CappedPaginator
    ordering = ["-created_at"]
    actions = ["complete_selected"]
    readonly_fields = ["id", "status_badge", "job_link", "created_at_when", "timeout_at_when",
                       "completed_at_when", "tags_display", "output_display"]
    fields = tuple(readonly_fields)

    created_at_when = time_column("created_at", "created")
    timeout_at_when = time_column("timeout_at", "times out")
    completed_at_when = time_column("completed_at", "completed")

    def has_complete_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("django_edgejobs.change_waittoken")

    def get_search_results(self, request: HttpRequest, queryset, search_term: str):
        term = search_term.strip()
        if not term:
            return queryset, False
        job_id = parse_job_id(term)
        if job_id is not None:
            return queryset.filter(job_id=job_id), False
        return queryset.filter(id=term), False

    @admin.display(description="status", ordering="status")
    def status_badge(self, token: WaitToken) -> str:
        return format_html('<span class="ej-badge ej-{}">{}</span>', token.status, token.status)

    @admin.display(description="job")
    def job_link(self, token: WaitToken) -> str:
        url = reverse("admin:django_edgejobs_job_change", args=[token.job_id])
        return format_html('<a href="{}">{}</a>', url, str(token.job_id)[:8])

    @admin.display(description="tags")
    def tags_display(self, token: WaitToken) -> str:
        return display.short_json(token.tags)

    @admin.display(description="output")
    def output_display(self, token: WaitToken) -> str:
        return format_html("<pre>{}</pre>", display.pretty_json(token.output))

    @admin.action(permissions=["complete"], description="Complete selected tokens with output…")
    def complete_selected(self, request: HttpRequest, queryset):
        from django.core.exceptions import PermissionDenied

        if not self.has_complete_permission(request):
            raise PermissionDenied
        tokens = list(queryset.order_by("-created_at")[:MAX_COMPLETE + 1])
        if len(tokens) > MAX_COMPLETE:
            self.message_user(request, f"Select at most {MAX_COMPLETE} tokens at a time.",
                              messages.ERROR)
            return None
        form = OutputForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            done: list[str] = []
            refused: list[str] = []
            try:
                for token in tokens:
                    (done if complete_token(token.id, form.cleaned_data["output"])
                     else refused).append(token.id)
            except InvalidPayload as exc:
                form.add_error("output", str(exc))
            else:
                if done:
                    log_change(request, WaitToken.objects.filter(id__in=done),
                               "Completed (admin action)")
                    self.message_user(request, f"Completed {len(done)} token(s); their jobs "
                                               "resume.", messages.SUCCESS)
                if refused:
                    self.message_user(
                        request, f"Not completed (already completed, timed out, or the job "
                                 f"ended): {', '.join(refused)}.", messages.WARNING)
                return None
        context = {
            **self.admin_site.each_context(request),
            "title": "Complete wait tokens",
            "opts": self.opts,
            "app_label": self.opts.app_label,
            "form": form,
            "tokens": tokens,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/django_edgejobs/waittoken/complete.html",
                                context)
