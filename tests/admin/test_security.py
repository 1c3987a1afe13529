"""Security of the admin: login, permissions, CSRF, escaping, and no state change on GET."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.apps import apps
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import User
from django.core.cache import caches
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from django_edgejobs import add_cron, enqueue, get_job
from django_edgejobs.models import CronSchedule, Job, JobEvent, WaitToken, Worker
from tests.admin.conftest import make_job

pytestmark = pytest.mark.django_db

SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"
JOBS = "admin:django_edgejobs_job_changelist"


@pytest.fixture
def world(register, settings):  # type: ignore[no-untyped-def]
    """One of everything, with hostile text wherever text can go."""
    settings.CACHES = {**settings.CACHES, "edge": {
        "BACKEND": "tests.admin.fake_cache.ListingLocMemCache", "LOCATION": "security"}}
    caches["edge"].set(f"k:{SCRIPT}", 1, metadata={"m": IMG})
    register(SCRIPT, lambda payload, ctx: None)
    hostile = enqueue(SCRIPT, {"html": SCRIPT, "img": IMG, IMG: "key"}, tags=[SCRIPT, IMG],
                      idempotency_key=IMG, queue=IMG)
    Job.objects.filter(pk=hostile.pk).update(
        status="failed", last_error=f"ValueError: {SCRIPT}", result={"r": IMG},
        steps={"s": SCRIPT}, completed_at=timezone.now(), started_at=timezone.now(),
        error_history=[{"attempt": 1, "error": f"ValueError: {IMG}",
                        "traceback": f"Traceback\n  {SCRIPT}\nValueError: {IMG}", "at": IMG}])
    JobEvent.objects.create(job_id=hostile.pk, type="failed", data={"error": SCRIPT})
    pending = make_job("pending", run_at=timezone.now() + timedelta(hours=1))
    failed = make_job("failed")
    Worker.objects.create(id=f"w{IMG}", hostname=SCRIPT, pid=1, concurrency=1, queues=[IMG])
    running = make_job("processing", lease_owner=f"w{IMG}", type_=SCRIPT)
    token = WaitToken.objects.create(job=pending, tags=[SCRIPT], output={"o": IMG})
    schedule = add_cron(f"c{IMG}", "0 2 * * *", SCRIPT, {"p": SCRIPT})
    return {"hostile": get_job(hostile.pk), "pending": pending, "failed": failed,
            "running": running, "token": token, "schedule": schedule}


def pages(world) -> list[str]:  # type: ignore[no-untyped-def]
    """Every admin page of the app that answers GET."""
    jobs = [world[k] for k in ("hostile", "pending", "failed", "running")]
    out = [reverse("admin:index"), reverse("admin:app_list", args=["django_edgejobs"]),
           reverse("admin:django_edgejobs_dashboard"),
           reverse("admin:django_edgejobs_dashboard") + "?refresh=10",
           reverse("admin:django_edgejobs_cache") + "?cache=edge&prefix=k:"]
    for model in ("job", "jobevent", "waittoken", "cronschedule", "worker"):
        out.append(reverse(f"admin:django_edgejobs_{model}_changelist"))
    for query in ("status=failed", "attention=stuck", "attention=overdue", "attention=due",
                  "finished=24h", f"q={SCRIPT}", "q=tag:x", "worker=x", "tag=x",
                  "created_at__year=2030", "type=t.a&queue=default",
                  # an action named in a GET is never run
                  f"action=retry_selected&index=0&_selected_action={world['failed'].pk}"):
        out.append(reverse(JOBS) + "?" + query)
    for job in jobs:
        out += [reverse("admin:django_edgejobs_job_change", args=[job.pk]),
                reverse("admin:django_edgejobs_job_change", args=[job.pk]) + "?action=retry",
                reverse("admin:django_edgejobs_job_history", args=[job.pk])]
        if job.status != "processing":  # a running job has no delete page (403)
            out.append(reverse("admin:django_edgejobs_job_delete", args=[job.pk]))
    out += [reverse("admin:django_edgejobs_waittoken_change", args=[world["token"].pk]),
            reverse("admin:django_edgejobs_cronschedule_change", args=[world["schedule"].pk]),
            reverse("admin:django_edgejobs_cronschedule_delete", args=[world["schedule"].pk]),
            reverse("admin:django_edgejobs_cronschedule_add"),
            reverse("admin:django_edgejobs_worker_change", args=[f"w{IMG}"]),
            reverse("admin:django_edgejobs_jobevent_changelist") + f"?job_id={world['hostile'].pk}"]
    return out


def snapshot() -> dict[str, list]:
    tables = {}
    for model in [*apps.get_app_config("django_edgejobs").get_models(), LogEntry, User]:
        tables[model._meta.db_table] = list(model.objects.order_by("pk").values())
    tables["edge cache"] = [(r["key"], r["metadata"]) for r in caches["edge"].list()]
    return tables


def test_anonymous_users_are_sent_to_the_login_page(world, client):
    for url in pages(world):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response.url.startswith(reverse("admin:login")), url
    before = snapshot()
    for url in (reverse(JOBS), reverse("admin:django_edgejobs_job_change",
                                       args=[world["failed"].pk])):
        response = client.post(url, {"action": "retry_selected", "index": "0",
                                     "_selected_action": [world["failed"].pk]})
        assert response.status_code == 302 and "/login/" in response.url
    assert snapshot() == before


def test_get_requests_change_nothing(world, admin_client):
    before = snapshot()
    for url in pages(world):
        response = admin_client.get(url)
        # An action named in a GET query is an unknown filter to the list: "?e=1".
        expected = 302 if "action=retry_selected" in url else 200
        assert response.status_code == expected, (url, response.status_code)
    assert snapshot() == before


def test_hostile_text_is_escaped_everywhere(world, admin_client):
    seen = 0
    for url in pages(world):
        html = admin_client.get(url).content.decode()
        assert SCRIPT not in html, url
        assert "<img src=x" not in html, url
        seen += "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert seen >= 10
    detail = admin_client.get(reverse("admin:django_edgejobs_job_change",
                                      args=[world["hostile"].pk])).content.decode()
    for fragment in ("&lt;img src=x onerror=alert(1)&gt;",  # error, traceback, result
                     "Traceback\n  &lt;script&gt;"):
        assert fragment in detail


ACTION_POSTS = [
    ("retry_selected", "failed"), ("cancel_selected", "pending"),
    ("run_now_selected", "pending"), ("delete_selected_jobs", "failed"),
    ("delete_selected", "failed"),
]


@pytest.mark.parametrize(("action", "target"), ACTION_POSTS)
def test_staff_without_the_permission_sees_no_action_and_a_forged_post_is_403(
        world, staff, action, target):
    viewer = staff("view_job", "view_jobevent", "view_waittoken", "view_cronschedule",
                   "view_worker")
    html = viewer.get(reverse(JOBS)).content.decode()
    assert 'name="action"' not in html  # no action at all for a viewer
    before = snapshot()
    job = world[target]
    response = viewer.post(reverse(JOBS), {"action": action, "index": "0",
                                           "_selected_action": [str(job.pk)], "confirm": "yes"})
    assert response.status_code == 403
    detail = reverse("admin:django_edgejobs_job_change", args=[job.pk])
    name = action.replace("_selected", "").replace("_jobs", "")
    assert viewer.post(detail, {"action": name}).status_code == 403
    assert snapshot() == before


def test_each_permission_opens_only_its_own_action(world, staff):
    retrier = staff("view_job", "retry_job")
    html = retrier.get(reverse(JOBS)).content.decode()
    assert "retry_selected" in html and "cancel_selected" not in html
    assert "run_now_selected" not in html and "delete_selected_jobs" not in html
    pending = world["pending"]
    assert retrier.post(reverse(JOBS), {"action": "cancel_selected", "index": "0",
                                        "_selected_action": [str(pending.pk)]}
                        ).status_code == 403
    assert retrier.post(reverse("admin:django_edgejobs_job_change", args=[pending.pk]),
                        {"action": "cancel"}).status_code == 403
    assert get_job(pending.pk).status == "pending"
    response = retrier.post(reverse("admin:django_edgejobs_job_change",
                                    args=[world["failed"].pk]), {"action": "retry"})
    assert response.status_code == 302 and get_job(world["failed"].pk).status == "pending"
    canceller = staff("view_job", "cancel_job")
    assert canceller.post(reverse("admin:django_edgejobs_job_change", args=[pending.pk]),
                          {"action": "cancel"}).status_code == 302
    assert get_job(pending.pk).status == "cancelled"


def test_staff_without_view_permission_is_refused(world, staff):
    nobody = staff()
    for url in pages(world)[2:]:
        assert nobody.get(url).status_code == 403, url


def test_posts_without_a_csrf_token_are_rejected(world, db):
    admin = User.objects.create_superuser("csrf", "c@example.com", "pw")
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin)
    before = snapshot()
    failed, pending, schedule = world["failed"], world["pending"], world["schedule"]
    posts = [
        (reverse(JOBS), {"action": "retry_selected", "index": "0",
                         "_selected_action": [str(failed.pk)]}),
        (reverse("admin:django_edgejobs_job_change", args=[failed.pk]), {"action": "retry"}),
        (reverse("admin:django_edgejobs_job_change", args=[pending.pk]), {"action": "cancel"}),
        (reverse("admin:django_edgejobs_job_delete", args=[failed.pk]), {"post": "yes"}),
        (reverse("admin:django_edgejobs_cronschedule_changelist"),
         {"action": "pause_selected", "index": "0", "_selected_action": [str(schedule.pk)]}),
        (reverse("admin:django_edgejobs_cronschedule_add"), {"name": "x", "cron": "* * * * *",
                                                             "type": "t.a"}),
        (reverse("admin:django_edgejobs_waittoken_changelist"),
         {"action": "complete_selected", "index": "0", "apply": "yes", "output": "1",
          "_selected_action": [world["token"].pk]}),
        (reverse("admin:django_edgejobs_cache"), {"cache": "edge", "keys": [f"k:{SCRIPT}"]}),
    ]
    for url, data in posts:
        response = client.post(url, data)
        assert response.status_code == 403, url
        assert b"CSRF" in response.content, url
    assert snapshot() == before
    # The same POST with the token goes through.
    client.get(reverse("admin:django_edgejobs_job_change", args=[failed.pk]))
    token = client.cookies["csrftoken"].value
    response = client.post(reverse("admin:django_edgejobs_job_change", args=[failed.pk]),
                           {"action": "retry", "csrfmiddlewaretoken": token})
    assert response.status_code == 302 and get_job(failed.pk).status == "pending"


def test_the_cron_actions_refuse_a_forged_post(world, staff):
    viewer = staff("view_cronschedule")
    schedule = world["schedule"]
    for action in ("pause_selected", "resume_selected", "run_now_selected"):
        response = viewer.post(reverse("admin:django_edgejobs_cronschedule_changelist"),
                               {"action": action, "index": "0",
                                "_selected_action": [str(schedule.pk)]})
        assert response.status_code == 403
    assert CronSchedule.objects.get(pk=schedule.pk).enabled
