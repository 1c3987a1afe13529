"""Cron schedules: the list in words with the next runs, pause/resume/run-now actions, and a
form that validates through the services and saves with add_cron / edit_cron."""

from __future__ import annotations

import json
from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from ..crontimes import get_zone, parse_expression
from ..models import CronSchedule, CronTick, Job
from ..registry import get_registry
from ..retry import backoff_mode
from ..services import schedules as services
from . import display
from .base import GuardedActionsMixin, UrlInputMixin, log_change, time_column

FIELDS = ["name", "cron", "timezone", "type", "payload", "enabled", "allow_overlap", "queue",
          "priority", "tags", "max_attempts", "retry_delay", "backoff", "retry_multiplier",
          "retry_delay_max", "timeout", "concurrency_key", "concurrency_limit", "rate_limit",
          "rate_key", "metadata"]
#: The form's choice of ``retry_backoff`` ("": the job type's default).
BACKOFF_CHOICES = [("", "the job type's default"), ("exponential", "exponential"),
                   ("linear", "linear"), ("fixed", "fixed (no backoff)")]


def _message(exc: Exception) -> str:
    return str(exc)


class CronScheduleForm(forms.ModelForm):
    type = forms.ChoiceField(help_text="A job type registered with @job.")
    timezone = forms.CharField(initial="UTC", max_length=64,
                               help_text="An IANA name, e.g. UTC or America/New_York.")
    payload = forms.JSONField(required=False, initial=dict, help_text="A JSON object.")
    tags = forms.JSONField(required=False, initial=list,
                           help_text='A JSON list of strings, e.g. ["reports"].')
    backoff = forms.ChoiceField(
        label="Retry backoff", required=False, choices=BACKOFF_CHOICES,
        help_text="How the delay between retries grows: times the multiplier (exponential), "
                  "plus the multiplier times the delay (linear), or not at all (fixed).")
    metadata = forms.JSONField(required=False, initial=dict,
                               help_text="A JSON object for people and tools; never used to "
                                         "run the schedule.")

    class Meta:
        model = CronSchedule
        fields = FIELDS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        names = get_registry().names()
        current = self.instance.type if self.instance.pk else None
        if current and current not in names:  # keep an unregistered type visible, marked
            names = [*names, current]
        cast(Any, self.fields["type"]).choices = [("", "---------")] + [
            (n, n if n in get_registry() else f"{n} (not registered)") for n in names]
        if self.instance.pk and "name" in self.fields:  # a view-only user's form has none
            self.fields["name"].disabled = True
        if self.instance.pk and "backoff" in self.fields:
            self.fields["backoff"].initial = self.stored_backoff()

    def stored_backoff(self) -> str:
        """The instance's ``retry_backoff`` as a mode name ("": the type's default)."""
        backoff = self.instance.backoff
        return "" if backoff is None else backoff_mode(backoff)

    def clean_cron(self) -> str:
        try:
            return parse_expression(self.cleaned_data.get("cron"), where="expression")
        except ValueError as exc:
            raise forms.ValidationError(_message(exc)) from None

    def clean_timezone(self) -> str:
        try:
            return get_zone(self.cleaned_data.get("timezone"), where="time zone").key
        except ValueError as exc:
            raise forms.ValidationError(_message(exc)) from None

    def clean_type(self) -> str:
        try:
            return services.check_type(self.cleaned_data.get("type"), where="job type")
        except ValueError as exc:
            raise forms.ValidationError(_message(exc)) from None

    def clean_name(self) -> str:
        name = self.cleaned_data.get("name")
        if self.instance.pk:
            return self.instance.name
        try:
            return services.check_name(name, where="name")
        except ValueError as exc:
            raise forms.ValidationError(_message(exc)) from None

    def definition(self) -> dict[str, Any]:
        data = self.cleaned_data
        values = {k: data.get(k) for k in services.DEFINITION_KEYS if k != "retry_backoff"}
        values["queue"] = values["queue"] or None
        # An unchanged mode keeps its stored form (True stays True, not "exponential").
        backoff = data.get("backoff") or None
        if self.instance.pk and (backoff or "") == self.stored_backoff():
            backoff = self.instance.backoff
        values["retry_backoff"] = backoff
        values["metadata"] = {} if values["metadata"] is None else values["metadata"]
        values["payload"] = {} if values["payload"] is None else values["payload"]
        values["tags"] = [] if values["tags"] is None else values["tags"]
        return values

    def clean(self) -> dict[str, Any] | None:
        data = super().clean()
        if self.errors:
            return data
        try:
            services.clean_definition(self.definition(), where="schedule")
        except ValueError as exc:
            raise forms.ValidationError(_message(exc)) from None
        return data


#: The detail page's buttons (POST, CSRF): name -> label.
CRON_BUTTONS = {"pause": "Pause", "resume": "Resume", "run": "Run now"}


@admin.register(CronSchedule)
class CronScheduleAdmin(GuardedActionsMixin, UrlInputMixin, admin.ModelAdmin):
    change_list_template = "admin/django_edgejobs/change_list_wide.html"
    form = CronScheduleForm
    list_display = ["name", "status_badge", "schedule", "type", "next_runs", "last_run",
                    "source", "metadata_brief"]
    list_filter = ["enabled", "source"]
    search_fields = ["name", "type"]
    actions = ["pause_selected", "resume_selected", "run_now_selected"]
    change_form_template = "admin/django_edgejobs/cronschedule/change_form.html"
    readonly_fields = ["schedule", "next_runs", "source", "last_run", "last_job_link",
                       "recent_ticks", "created_at_when", "updated_at_when"]

    def get_fieldsets(self, request: HttpRequest, obj=None):
        definition = (None, {"fields": ["name", "cron", "timezone", "type", "payload",
                                        "enabled", "allow_overlap"]})
        options = ("Job options (empty: the job type's default)",
                   {"fields": ["queue", "priority", "tags", "max_attempts", "retry_delay",
                               "backoff", "retry_multiplier", "retry_delay_max", "timeout"]})
        limits = ("Flow control (empty: the job type's)",
                  {"fields": ["concurrency_key", "concurrency_limit", "rate_limit", "rate_key"]})
        notes = ("Metadata", {"fields": ["metadata"]})
        if obj is None:
            return [definition, options, limits, notes]
        state = ("State", {"fields": ["schedule", "next_runs", "source", "last_run",
                                      "last_job_link", "recent_ticks", "created_at_when",
                                      "updated_at_when"]})
        return [state, definition, options, limits, notes]

    # -- the list -------------------------------------------------------------------------

    @admin.display(description="status", ordering="enabled")
    def status_badge(self, obj: CronSchedule) -> str:
        return format_html('<span class="ej-badge ej-{}">{}</span>', obj.status, obj.status)

    @admin.display(description="schedule")
    def schedule(self, obj: CronSchedule) -> str:
        try:
            return format_html("{}<br><code>{}</code>", obj.describe(), obj.cron)
        except ValueError as exc:
            return format_html('<span class="ej-badge ej-error">invalid</span> {}', exc)

    @admin.display(description="next 5 runs")
    def next_runs(self, obj: CronSchedule) -> str:
        if not obj.enabled:
            return "paused"
        try:
            times = obj.next_fire_times(5)
        except ValueError as exc:
            return str(exc)
        return format_html_join(mark_safe("<br>"), "{}",
                                ((t.strftime("%Y-%m-%d %H:%M:%S %Z"),) for t in times))

    @admin.display(description="retry backoff")
    def backoff(self, obj: CronSchedule) -> str:
        """The read-only view of the form's ``backoff`` (a view-only user's page)."""
        stored = obj.backoff
        return "the job type's default" if stored is None else backoff_mode(stored)

    @admin.display(description="metadata")
    def metadata_brief(self, obj: CronSchedule) -> str:
        if not obj.metadata:
            return "—"
        text = json.dumps(obj.metadata, ensure_ascii=False, sort_keys=True)
        return format_html('<code title="{}">{}</code>', text,
                           text if len(text) <= 80 else text[:79] + "…")

    created_at_when = time_column("created_at", "created")
    updated_at_when = time_column("updated_at", "updated")

    @admin.display(description="last run", ordering="last_tick_at")
    def last_run(self, obj: CronSchedule) -> str:
        if not obj.last_outcome:
            return "never"
        when = obj.last_run_at or obj.last_tick_at
        return format_html('<span class="ej-badge ej-{}">{}</span> {}', obj.last_outcome,
                           obj.last_outcome, display.when(when) if when else "")

    @admin.display(description="last job")
    def last_job_link(self, obj: CronSchedule) -> str:
        if obj.last_job_id is None:
            return "—"
        url = reverse("admin:django_edgejobs_job_change", args=[obj.last_job_id])
        return format_html('<a href="{}">{}</a>', url, obj.last_job_id)

    @admin.display(description="recent ticks")
    def recent_ticks(self, obj: CronSchedule) -> str:
        ticks = list(CronTick.objects.filter(schedule=obj).order_by("-tick_at")[:10])
        if not ticks:
            return "none yet"
        statuses = dict(Job.objects.filter(id__in=[t.job_id for t in ticks if t.job_id])
                        .values_list("id", "status"))

        def job_cell(tick: CronTick) -> str:
            if tick.job_id is None:
                return "—"
            status = statuses.get(tick.job_id)
            if status is None:  # pruned since
                return format_html('{} <span class="ej-muted">(gone)</span>', tick.job_id)
            url = reverse("admin:django_edgejobs_job_change", args=[tick.job_id])
            return format_html('<a href="{}">{}</a> <span class="ej-badge ej-{}">{}</span>',
                               url, str(tick.job_id)[:8], status, status)

        rows = format_html_join(
            "", '<tr><td>{}</td><td><span class="ej-badge ej-{}">{}</span></td><td>{}</td>'
                "<td>{}</td></tr>",
            ((display.when(t.tick_at), t.outcome, t.outcome, job_cell(t),
              t.reason[:300]) for t in ticks))
        return format_html("<table><thead><tr><th>tick</th><th>outcome</th><th>job</th>"
                           "<th>reason</th></tr></thead><tbody>{}</tbody></table>", rows)

    # -- the detail page's buttons: pause, resume, run now (the change permission) --------

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "",
                    extra_context=None):
        obj = self.get_object(request, unquote(object_id))
        action = request.POST.get("_cron_action") if request.method == "POST" else None
        if action is not None and obj is not None:
            if action not in CRON_BUTTONS or not self.has_change_permission(request, obj):
                raise PermissionDenied
            queryset = CronSchedule.objects.filter(pk=obj.pk)
            {"pause": self.pause_selected, "resume": self.resume_selected,
             "run": self.run_now_selected}[action](request, queryset)
            return HttpResponseRedirect(request.get_full_path())
        buttons = []
        if obj is not None and self.has_change_permission(request, obj):
            buttons = [(name, label) for name, label in CRON_BUTTONS.items()
                       if not (name == "pause" and not obj.enabled)
                       and not (name == "resume" and obj.enabled)]
        extra_context = {**(extra_context or {}), "cron_buttons": buttons}
        return super().change_view(request, object_id, form_url, extra_context)

    # -- saving through the services ------------------------------------------------------

    def save_model(self, request: HttpRequest, obj: CronSchedule, form: CronScheduleForm,
                   change: bool) -> None:
        values = form.definition()
        if change:
            services.edit_cron(obj.name, **values)
        else:
            created = services.add_cron(obj.name, values.pop("cron"), values.pop("type"),
                                        values.pop("payload"), **values)
            obj.pk = created.pk
            obj._state.adding = False
            obj._state.db = created._state.db
        obj.refresh_from_db()

    def delete_model(self, request: HttpRequest, obj: CronSchedule) -> None:
        services.remove_cron(obj.name)

    def delete_queryset(self, request: HttpRequest, queryset) -> None:
        for name in queryset.values_list("name", flat=True):
            services.remove_cron(name)

    # -- actions (the change permission) --------------------------------------------------

    def _apply(self, request: HttpRequest, queryset, fn, verb: str) -> None:
        names = list(queryset.values_list("name", flat=True)[:1000])
        done = [n for n in names if fn(n)]
        if done:
            log_change(request, CronSchedule.objects.filter(name__in=done),
                       f"{verb.capitalize()} (admin action)")
            self.message_user(request, f"{verb.capitalize()}: {', '.join(done)}.",
                              messages.SUCCESS)
        skipped = [n for n in names if n not in done]
        if skipped:
            self.message_user(request, f"Not {verb} (already so): {', '.join(skipped)}.",
                              messages.WARNING)

    @admin.action(permissions=["change"], description="Pause selected schedules")
    def pause_selected(self, request: HttpRequest, queryset) -> None:
        self._apply(request, queryset, services.pause_cron, "paused")

    @admin.action(permissions=["change"], description="Resume selected schedules")
    def resume_selected(self, request: HttpRequest, queryset) -> None:
        self._apply(request, queryset, services.resume_cron, "resumed")

    @admin.action(permissions=["change"], description="Run selected schedules now")
    def run_now_selected(self, request: HttpRequest, queryset) -> None:
        names = list(queryset.values_list("name", flat=True)[:100])
        for name in names:
            try:
                job, started = services.run_now(name)
            except ValueError as exc:  # e.g. its job type is no longer registered
                self.message_user(request, f"{name}: {exc}", messages.ERROR)
                continue
            url = reverse("admin:django_edgejobs_job_change", args=[job.pk])
            if not started:  # allow_overlap=False and a run is still active
                self.message_user(request, format_html(
                    '{}: not started: its previous run <a href="{}">{}</a> is still {} '
                    "(allow_overlap is off).", name, url, job.pk, job.status), messages.WARNING)
                continue
            log_change(request, CronSchedule.objects.filter(name=name),
                       f"Run now (admin action): job {job.pk}")
            self.message_user(request, format_html('{}: enqueued job <a href="{}">{}</a>.',
                                                   name, url, job.pk), messages.SUCCESS)
