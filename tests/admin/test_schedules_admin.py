"""Cron schedules in the admin: the list in words, actions, and the form through services."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.urls import reverse

from django_edgejobs import add_cron, list_crons
from django_edgejobs.models import CronSchedule, Job

pytestmark = pytest.mark.django_db

LIST = "admin:django_edgejobs_cronschedule_changelist"
ADD = "admin:django_edgejobs_cronschedule_add"


def form_data(**changes) -> dict:  # type: ignore[no-untyped-def]
    data = {"name": "nightly", "cron": "0 2 * * *", "timezone": "UTC", "type": "t.a",
            "payload": "{}", "enabled": "on", "queue": "", "priority": "", "tags": "[]",
            "max_attempts": "", "retry_delay": "", "retry_backoff": "unknown",
            "retry_delay_max": "", "timeout": ""}
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def act(client, action: str, *schedules):  # type: ignore[no-untyped-def]
    return client.post(reverse(LIST), {"action": action, "index": "0", "_selected_action": [
        str(s.pk) for s in schedules]})


def test_the_list_says_the_schedule_in_words_with_the_next_five_runs(admin_client):
    add_cron("daily", "0 9 * * 1-5", "t.a", timezone="America/New_York")
    html = admin_client.get(reverse(LIST)).content.decode()
    assert "At 09:00, Monday through Friday (America/New_York)" in html
    assert html.count(" EST<br>") + html.count(" EDT<br>") >= 4  # five runs in the zone
    assert "never" in html  # no run yet


def test_last_run_and_outcome(admin_client):
    schedule = add_cron("daily", "0 9 * * *", "t.a")
    from django_edgejobs import trigger_cron

    job = trigger_cron("daily")
    html = admin_client.get(reverse(LIST)).content.decode()
    assert '<span class="ej-badge ej-triggered">triggered</span>' in html
    page = admin_client.get(reverse("admin:django_edgejobs_cronschedule_change",
                                    args=[schedule.pk])).content.decode()
    assert str(job.pk) in page


def test_add_saves_through_add_cron(admin_client):
    response = admin_client.post(reverse(ADD), form_data(payload='{"kind": "x"}',
                                                         tags='["reports"]', priority="5"))
    assert response.status_code == 302, response.context["adminform"].form.errors
    schedule = CronSchedule.objects.get(name="nightly")
    assert schedule.source == "api" and schedule.payload == {"kind": "x"}
    assert schedule.tags == ["reports"] and schedule.priority == 5
    assert LogEntry.objects.filter(object_id=str(schedule.pk)).exists()


@pytest.mark.parametrize(("field", "value", "message"), [
    ("cron", "61 * * * *", "invalid cron expression"),
    ("cron", "* * *", "it has 3 field(s)"),
    ("timezone", "Europe/Pariss", "did you mean &#x27;Europe/Paris&#x27;"),
    ("type", "t.nope", "Select a valid choice"),
    ("name", "x" * 200, "at most"),
    ("tags", '"not a list"', "tags"),
])
def test_the_form_names_each_problem(admin_client, field, value, message):
    response = admin_client.post(reverse(ADD), form_data(**{field: value}))
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not CronSchedule.objects.exists()


def test_type_choices_are_the_registered_types(admin_client):
    html = admin_client.get(reverse(ADD)).content.decode()
    assert '<option value="t.a">' in html and '<option value="t.b">' in html


def test_change_saves_through_edit_cron_and_keeps_the_name(admin_client):
    schedule = add_cron("nightly", "0 2 * * *", "t.a")
    url = reverse("admin:django_edgejobs_cronschedule_change", args=[schedule.pk])
    response = admin_client.post(url, form_data(name="renamed", cron="30 3 * * *",
                                                timezone="Europe/Paris"))
    assert response.status_code == 302, response.context["adminform"].form.errors
    schedule.refresh_from_db()
    assert (schedule.name, schedule.cron, schedule.timezone) == ("nightly", "30 3 * * *",
                                                                 "Europe/Paris")


def test_delete_goes_through_remove_cron(admin_client):
    schedule = add_cron("nightly", "0 2 * * *", "t.a")
    url = reverse("admin:django_edgejobs_cronschedule_delete", args=[schedule.pk])
    assert admin_client.post(url, {"post": "yes"}).status_code == 302
    assert list_crons() == []


def test_pause_resume_and_run_now(admin_client):
    a = add_cron("a", "0 2 * * *", "t.a")
    b = add_cron("b", "0 3 * * *", "t.a", enabled=False)
    act(admin_client, "pause_selected", a, b)
    assert not CronSchedule.objects.get(pk=a.pk).enabled
    act(admin_client, "resume_selected", a, b)
    assert CronSchedule.objects.get(pk=a.pk).enabled and CronSchedule.objects.get(
        pk=b.pk).enabled
    act(admin_client, "run_now_selected", a)
    assert [j.tags for j in Job.objects.all()] == [["cron:a"]]
    assert LogEntry.objects.filter(change_message__startswith="Run now").count() == 1


def test_actions_need_the_change_permission(staff):
    schedule = add_cron("a", "0 2 * * *", "t.a")
    viewer = staff("view_cronschedule")
    html = viewer.get(reverse(LIST)).content.decode()
    assert "pause_selected" not in html
    assert act(viewer, "pause_selected", schedule).status_code == 403
    assert act(viewer, "run_now_selected", schedule).status_code == 403
    assert CronSchedule.objects.get(pk=schedule.pk).enabled
    assert not Job.objects.exists()
    editor = staff("view_cronschedule", "change_cronschedule")
    assert "pause_selected" in editor.get(reverse(LIST)).content.decode()
    act(editor, "pause_selected", schedule)
    assert not CronSchedule.objects.get(pk=schedule.pk).enabled


def test_a_view_only_user_sees_a_schedule(staff):
    """The view-only page builds the form without its read-only fields (it answered 500)."""
    schedule = add_cron("nightly", "0 2 * * *", "t.a", {"kind": "x"})
    viewer = staff("view_cronschedule")
    response = viewer.get(reverse("admin:django_edgejobs_cronschedule_change",
                                  args=[schedule.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    assert "nightly" in html and "0 2 * * *" in html and 'name="_save"' not in html
    assert viewer.post(reverse("admin:django_edgejobs_cronschedule_change",
                               args=[schedule.pk]), {"cron": "* * * * *"}).status_code == 403
    assert CronSchedule.objects.get(pk=schedule.pk).cron == "0 2 * * *"


def detail(schedule) -> str:  # type: ignore[no-untyped-def]
    return reverse("admin:django_edgejobs_cronschedule_change", args=[schedule.pk])


def press(client, schedule, button: str):  # type: ignore[no-untyped-def]
    return client.post(detail(schedule), {"_cron_action": button})


def test_the_detail_page_pauses_resumes_and_runs_with_one_click(admin_client):
    schedule = add_cron("a", "0 2 * * *", "t.a")
    html = admin_client.get(detail(schedule)).content.decode()
    assert 'id="cron-pause"' in html and 'id="cron-run"' in html
    assert 'id="cron-resume"' not in html
    response = press(admin_client, schedule, "pause")
    assert response.status_code == 302 and response.url == detail(schedule)
    assert not CronSchedule.objects.get(pk=schedule.pk).enabled
    html = admin_client.get(detail(schedule)).content.decode()
    assert 'id="cron-resume"' in html and 'id="cron-pause"' not in html
    assert "Paused: a." in html
    press(admin_client, schedule, "resume")
    assert CronSchedule.objects.get(pk=schedule.pk).enabled
    press(admin_client, schedule, "run")
    job = Job.objects.get()
    assert job.tags == ["cron:a"]
    assert [e.change_message for e in LogEntry.objects.order_by("pk")] == [
        "Paused (admin action)", "Resumed (admin action)", f"Run now (admin action): job {job.pk}"]


def test_the_detail_buttons_need_the_change_permission_and_csrf(staff):
    schedule = add_cron("a", "0 2 * * *", "t.a")
    viewer = staff("view_cronschedule")
    assert 'id="cron-' not in viewer.get(detail(schedule)).content.decode()
    assert press(viewer, schedule, "pause").status_code == 403
    editor = staff("view_cronschedule", "change_cronschedule")
    assert press(editor, schedule, "drop_tables").status_code == 403
    forged = staff("view_cronschedule", "change_cronschedule", csrf=True)
    assert press(forged, schedule, "pause").status_code == 403
    assert CronSchedule.objects.get(pk=schedule.pk).enabled and not Job.objects.exists()


def test_recent_ticks_link_their_jobs_with_the_jobs_status(admin_client):
    from django.utils import timezone

    from django_edgejobs import enqueue
    from django_edgejobs.models import CronTick

    schedule = add_cron("a", "0 2 * * *", "t.a")
    job = enqueue("t.a")
    Job.objects.filter(pk=job.pk).update(status="failed")
    now = timezone.now()
    CronTick.objects.create(schedule=schedule, tick_at=now, outcome="enqueued", job_id=job.pk)
    gone = CronTick.objects.create(schedule=schedule, tick_at=now - timedelta(days=1),
                                   outcome="enqueued", job_id=uuid.uuid4())
    html = admin_client.get(detail(schedule)).content.decode()
    assert f'{gone.job_id} <span class="ej-muted">(gone)</span>' in html
    job_url = reverse("admin:django_edgejobs_job_change", args=[job.pk])
    assert (f'<a href="{job_url}">{str(job.pk)[:8]}</a> '
            '<span class="ej-badge ej-failed">failed</span>') in html
