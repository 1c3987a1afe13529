"""Cron options in the admin: metadata shown escaped and edited, the retry backoff mode and
multiplier in the schedule form (saved through add_cron / edit_cron)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from django_edgejobs import add_cron
from django_edgejobs.models import CronSchedule

pytestmark = pytest.mark.django_db

LIST = "admin:django_edgejobs_cronschedule_changelist"
ADD = "admin:django_edgejobs_cronschedule_add"


def form_data(**changes: str) -> dict[str, str]:
    data = {"name": "nightly", "cron": "0 2 * * *", "timezone": "UTC", "type": "t.a",
            "payload": "{}", "enabled": "on", "queue": "", "priority": "", "tags": "[]",
            "max_attempts": "", "retry_delay": "", "backoff": "", "retry_multiplier": "",
            "retry_delay_max": "", "timeout": "", "metadata": "{}"}
    data.update(changes)
    return data


def change(schedule: CronSchedule) -> str:
    return reverse("admin:django_edgejobs_cronschedule_change", args=[schedule.pk])


HOSTILE = {"note": "<script>alert(1)</script>"}


def test_metadata_is_shown_escaped_in_the_list_and_the_form(admin_client):
    schedule = add_cron("m", "0 2 * * *", "t.a", metadata=HOSTILE)
    for url in (reverse(LIST), change(schedule)):
        html = admin_client.get(url).content.decode()
        assert "<script>alert(1)</script>" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_a_view_only_user_sees_metadata_and_the_mode_escaped(staff):
    schedule = add_cron("v", "0 2 * * *", "t.a", metadata=HOSTILE, retry_backoff="linear")
    html = staff("view_cronschedule").get(change(schedule)).content.decode()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;" in html
    assert ">linear<" in html


def test_add_saves_mode_multiplier_and_metadata_through_add_cron(admin_client):
    response = admin_client.post(reverse(ADD), form_data(
        backoff="linear", retry_multiplier="3", metadata='{"owner": "ops"}'))
    assert response.status_code == 302, response.content.decode()[:2000]
    schedule = CronSchedule.objects.get(name="nightly")
    assert (schedule.retry_backoff, schedule.retry_mode, schedule.retry_multiplier,
            schedule.metadata) == (True, "linear", 3.0, {"owner": "ops"})


@pytest.mark.parametrize(("field", "value", "message"), [
    ("metadata", "[1, 2]", "metadata must be a dict (a JSON object), got list"),
    ("retry_multiplier", "-2", "retry_multiplier must be a number &gt; 0"),
    ("backoff", "sometimes", "Select a valid choice"),
])
def test_the_form_refuses_bad_options(admin_client, field, value, message):
    response = admin_client.post(reverse(ADD), form_data(**{field: value}))
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not CronSchedule.objects.exists()


def test_an_unchanged_form_keeps_a_bool_backoff_as_a_bool(admin_client):
    schedule = add_cron("b", "0 2 * * *", "t.a", retry_backoff=True)
    page = admin_client.get(change(schedule)).content.decode()
    assert '<option value="exponential" selected>' in page
    response = admin_client.post(change(schedule), form_data(name="b", backoff="exponential"))
    assert response.status_code == 302
    schedule.refresh_from_db()
    assert (schedule.retry_backoff, schedule.retry_mode) == (True, "")
    admin_client.post(change(schedule), form_data(name="b", backoff="fixed"))
    schedule.refresh_from_db()
    assert (schedule.retry_backoff, schedule.retry_mode) == (False, "fixed")
