"""Pausing a queue from the dashboard: the state column, the buttons (only with
``django_edgejobs.pause_queue``), the POST that answers them, and the paused-queues card."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from django_edgejobs import pause_queue
from django_edgejobs.models import Queue
from tests.admin.conftest import make_job

pytestmark = pytest.mark.django_db

DASHBOARD = "admin:django_edgejobs_dashboard"
ACTION = "admin:django_edgejobs_queue_action"


def queue_row(html: str, name: str) -> str:
    match = re.search(rf'<tr class="[^"]*" data-queue="{re.escape(name)}">(.*?)</tr>', html,
                      re.S)
    assert match, f"no row of queue {name!r}"
    return match.group(1)


def card(html: str, label: str) -> str:
    match = re.search(r'<li class="(ej-card[^"]*)"><a href="[^"]*"><span class="ej-number">'
                      rf"(\d+)</span><span class=\"ej-label\">{label}</span>", html)
    assert match, label
    return f"{match.group(1)}:{match.group(2)}"


def test_pausing_from_the_dashboard_shows_the_queue_paused_and_offers_resume(admin_client):
    make_job("pending", queue="mail")
    html = admin_client.get(reverse(DASHBOARD)).content.decode()
    assert "running" in queue_row(html, "mail") and 'value="pause"' in queue_row(html, "mail")
    assert card(html, "Paused queues") == "ej-card:0"

    response = admin_client.post(reverse(ACTION), {"queue": "mail", "action": "pause",
                                                   "next": reverse(DASHBOARD) + "?refresh=5"})
    assert response.status_code == 302 and response.url == reverse(DASHBOARD) + "?refresh=5"
    assert Queue.objects.get(name="mail").paused

    page = admin_client.get(reverse(DASHBOARD))
    html = page.content.decode()
    row = queue_row(html, "mail")
    assert "ej-badge-paused" in row and 'value="resume"' in row and 'value="pause"' not in row
    assert card(html, "Paused queues") == "ej-card ej-alert:1"
    assert "Queue “mail” paused." in [str(m) for m in page.context["messages"]]

    admin_client.post(reverse(ACTION), {"queue": "mail", "action": "resume"})
    assert not Queue.objects.get(name="mail").paused


def test_a_paused_queue_with_no_jobs_is_listed(admin_client):
    pause_queue("empty")
    row = queue_row(admin_client.get(reverse(DASHBOARD)).content.decode(), "empty")
    assert "paused" in row


def test_pausing_twice_says_so_and_changes_nothing(admin_client):
    pause_queue("mail")
    before = Queue.objects.get(name="mail").paused_at
    admin_client.post(reverse(ACTION), {"queue": "mail", "action": "pause"})
    messages = [str(m) for m in admin_client.get(reverse(DASHBOARD)).context["messages"]]
    assert "Queue “mail” was already paused." in messages
    assert Queue.objects.get(name="mail").paused_at == before


def test_without_the_permission_there_is_no_button_and_a_forged_post_is_403(staff):
    make_job("pending", queue="mail")
    viewer = staff("view_job")
    html = viewer.get(reverse(DASHBOARD)).content.decode()
    assert "running" in queue_row(html, "mail") and 'name="action"' not in html
    assert viewer.post(reverse(ACTION), {"queue": "mail", "action": "pause"}).status_code == 403
    assert not Queue.objects.exists()
    pauser = staff("view_job", "pause_queue")
    assert 'value="pause"' in queue_row(pauser.get(reverse(DASHBOARD)).content.decode(), "mail")
    assert pauser.post(reverse(ACTION), {"queue": "mail", "action": "pause"}).status_code == 302
    assert Queue.objects.get(name="mail").paused


@pytest.mark.parametrize(("data", "message"), [
    ({"queue": "mail", "action": "stop"}, b"action must be pause or resume"),
    ({"queue": "", "action": "pause"}, b"queue must be a non-empty string"),
    ({"queue": "x" * 101, "action": "pause"}, b"longer than 100 characters"),
    ({"queue": "<script>alert(1)</script>\x00", "action": "pause"}, b"NUL"),
])
def test_bad_input_is_a_400_naming_it(admin_client, data, message):
    response = admin_client.post(reverse(ACTION), data)
    assert response.status_code == 400 and message in response.content
    assert response["Content-Type"].startswith("text/plain")  # it may quote the input
    assert not Queue.objects.exists()


def test_only_post_and_never_an_open_redirect(admin_client):
    assert admin_client.get(reverse(ACTION) + "?queue=mail&action=pause").status_code == 405
    assert not Queue.objects.exists()
    response = admin_client.post(reverse(ACTION), {"queue": "mail", "action": "pause",
                                                   "next": "https://evil.example/"})
    assert response.status_code == 302 and response.url == reverse(DASHBOARD)


def test_the_dashboard_is_listed_on_the_site_index_and_the_app_index(admin_client, staff):
    entry = reverse("admin:django_edgejobs_dashboard_changelist")
    for page in (reverse("admin:index"), reverse("admin:app_list", args=["django_edgejobs"])):
        html = admin_client.get(page).content.decode()
        assert f'href="{entry}"' in html and "Jobs dashboard" in html, page
    response = admin_client.get(entry)
    assert response.status_code == 302 and response.url == reverse(DASHBOARD)
    assert admin_client.get(reverse("admin:app_list", args=["django_edgejobs"])).content \
        .decode().count("Jobs dashboard") >= 1
    # Only for those who may see the dashboard.
    other = staff("view_worker")
    assert "Jobs dashboard" not in other.get(reverse("admin:index")).content.decode()
    assert other.get(entry).status_code == 403
    viewer = staff("view_job")
    assert f'href="{entry}"' in viewer.get(reverse("admin:index")).content.decode()
