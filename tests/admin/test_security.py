"""Security of the admin: login, permissions, CSRF, escaping, and no state change on GET."""

from __future__ import annotations

import warnings
from datetime import timedelta

import pytest
from django.apps import apps
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import User
from django.core.cache import CacheKeyWarning, caches
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from django_edgejobs import add_cron, enqueue, enqueue_batch, get_job, pause_queue
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
    # Still retrying after a hostile failure: the Failures page's Retrying column and group.
    make_job("pending", attempts=1, last_error=f"KeyError: {IMG}",
             error_history=[{"attempt": 1, "error": f"KeyError: {IMG}", "traceback": "",
                             "exception": SCRIPT}])
    Worker.objects.create(id=f"w{IMG}", hostname=SCRIPT, pid=1, concurrency=1, queues=[IMG])
    running = make_job("processing", lease_owner=f"w{IMG}", type_=SCRIPT)
    token = WaitToken.objects.create(job=pending, tags=[SCRIPT], output={"o": IMG})
    schedule = add_cron(f"c{IMG}", "0 2 * * *", SCRIPT, {"p": SCRIPT})
    pause_queue(IMG)  # the dashboard shows it with its button
    # Workflows: a batch with a hostile description, whose callback waits for a hostile job.
    batch = enqueue_batch([{"type": SCRIPT, "payload": {"b": SCRIPT}}],
                          on_complete=(SCRIPT, {"c": IMG}), description=SCRIPT)
    return {"hostile": get_job(hostile.pk), "pending": pending, "failed": failed,
            "running": running, "token": token, "schedule": schedule, "batch": batch,
            "callback": get_job(batch.on_complete_job)}


def pages(world) -> list[str]:  # type: ignore[no-untyped-def]
    """Every admin page of the app that answers GET."""
    jobs = [world[k] for k in ("hostile", "pending", "failed", "running", "callback")]
    out = [reverse("admin:index"), reverse("admin:app_list", args=["django_edgejobs"]),
           reverse("admin:django_edgejobs_dashboard"),
           reverse("admin:django_edgejobs_dashboard") + "?refresh=10",
           reverse("admin:django_edgejobs_failures"),
           reverse("admin:django_edgejobs_failures") + f"?since=all&x={SCRIPT}",
           reverse("admin:django_edgejobs_cache") + "?cache=edge&prefix=k:"]
    for model in ("job", "jobevent", "waittoken", "cronschedule", "worker", "batch"):
        out.append(reverse(f"admin:django_edgejobs_{model}_changelist"))
    for query in ("status=failed", "attention=stuck", "attention=overdue", "attention=due",
                  "finished=24h", f"q={SCRIPT}", "error_group=0123456789ab",
                  f"error_group={SCRIPT}", "q=tag:x", "worker=x", "tag=x",
                  "status=pending&error_group=0123456789ab", f"q=error:{SCRIPT}",
                  f"q=payload:{SCRIPT}", f"q={IMG}",
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
            reverse("admin:django_edgejobs_jobevent_changelist") + f"?job_id={world['hostile'].pk}",
            reverse("admin:django_edgejobs_batch_change", args=[world["batch"].pk]),
            reverse(JOBS) + f"?batch={world['batch'].pk}", reverse(JOBS) + f"?batch={SCRIPT}"]
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
    response = client.post(reverse("admin:django_edgejobs_queue_action"),
                           {"queue": "default", "action": "pause"})
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
        (reverse("admin:django_edgejobs_queue_action"), {"queue": "default",
                                                         "action": "pause"}),
        (reverse("admin:django_edgejobs_queue_action"), {"queue": IMG, "action": "resume"}),
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


def test_url_lookups_outside_the_filters_are_refused(world, admin_client):
    """Django alone filters a list by any lookup of the model's own fields: a viewer could
    read a masked payload key one character at a time (``?payload__api_key__startswith=``)."""
    enqueue("t.a", {"api_key": "s3cret"})
    WaitToken.objects.create(job=world["pending"], output={"password": "hunter2"})
    refused = {
        "job": ["payload__api_key__startswith=s3", "payload__api_key=s3cret",
                "lease_token__isnull=False", "last_error__contains=x", "pk__startswith=0",
                "id__startswith=0", "status__exact=failed", "created_at__gte=2000-01-01",
                "idempotency_key__startswith=%3C", "result__r__startswith=%3C"],
        "jobevent": ["data__error__startswith=%3C", "job_id__startswith=0"],
        "waittoken": ["output__password__startswith=hun", "job__payload__api_key=s3cret",
                      "job=" + str(world["pending"].pk)],
        "cronschedule": ["payload__p__startswith=%3C", "name__startswith=c"],
        "worker": ["hostname__startswith=%3C", "queues__contains=x"],
    }
    for model, queries in refused.items():
        url = reverse(f"admin:django_edgejobs_{model}_changelist")
        for query in queries:
            assert admin_client.get(f"{url}?{query}").status_code == 400, (model, query)
    allowed = {
        "job": ["status=failed", "queue=default", "type=t.a", "tag=x", "attention=due",
                "finished=1h", "worker=x", "created_at__year=2030&created_at__month=1"],
        "jobevent": [f"job_id={world['hostile'].pk}", "type__exact=failed"],
        "waittoken": ["status__exact=waiting"],
        "cronschedule": ["enabled__exact=1", "source__exact=api"],
        "worker": ["state=alive"],
    }
    for model, queries in allowed.items():
        url = reverse(f"admin:django_edgejobs_{model}_changelist")
        for query in queries:
            assert admin_client.get(f"{url}?{query}").status_code == 200, (model, query)
    # A parameter that names no field: the list again, flagged (Django's own answer).
    response = admin_client.get(reverse(JOBS) + "?no_such_field=1")
    assert response.status_code == 302 and response.url.endswith("?e=1")


@pytest.mark.parametrize("model", ["worker", "jobevent"])
def test_a_forged_action_on_a_list_without_actions_is_403(world, admin_client, model):
    before = snapshot()
    target = (f"w{IMG}" if model == "worker"
              else str(JobEvent.objects.values_list("pk", flat=True).first()))
    response = admin_client.post(reverse(f"admin:django_edgejobs_{model}_changelist"),
                                 {"action": "delete_selected", "index": "0", "post": "yes",
                                  "_selected_action": [target]})
    assert response.status_code == 403
    assert snapshot() == before


def test_a_user_who_may_not_see_jobs_cannot_probe_for_job_ids(world, staff):
    """403 for an existing and for a missing id alike (the redirect "does not exist" told
    the two apart)."""
    nobody = staff("view_worker")
    for job_id in (world["failed"].pk, "00000000-0000-4000-8000-000000000000", "not-a-uuid"):
        url = reverse("admin:django_edgejobs_job_change", args=[job_id])
        assert nobody.get(url).status_code == 403, job_id


def test_nul_characters_and_malformed_ids_are_refused_not_a_server_error(world, admin_client):
    """PostgreSQL refuses a NUL character in a text query (DataError), and a number or UUID
    column refuses "abc": a URL or POST holding one got a 500."""
    before = snapshot()
    nul = "a\x00b"
    for model, param in [("job", "queue"), ("job", "type"), ("job", "worker"), ("job", "tag"),
                         ("jobevent", "type__exact"), ("waittoken", "status__exact"),
                         ("cronschedule", "source__exact"), ("worker", "state")]:
        url = reverse(f"admin:django_edgejobs_{model}_changelist")
        assert admin_client.get(url, {param: nul}).status_code == 400, (model, param)
    for model in ("job", "jobevent", "waittoken", "cronschedule", "worker"):
        for view in ("change", "history", "delete"):
            url = reverse(f"admin:django_edgejobs_{model}_{view}", args=[nul])
            response = admin_client.get(url)
            assert response.status_code in (302, 403), (model, view, response.status_code)
    for model, action in [("job", "retry_selected"), ("job", "delete_selected_jobs"),
                          ("waittoken", "complete_selected"), ("waittoken", "delete_selected"),
                          ("cronschedule", "pause_selected"),
                          ("cronschedule", "delete_selected")]:
        for bad in (nul, "abc", "1 OR 1=1"):
            if model == "waittoken" and bad != nul:
                continue  # any text is a possible token id: it selects nothing
            response = admin_client.post(
                reverse(f"admin:django_edgejobs_{model}_changelist"),
                {"action": action, "index": "0", "_selected_action": [bad], "apply": "1",
                 "output": "1", "post": "yes", "confirm": "yes"})
            assert response.status_code == 400, (model, action, bad, response.status_code)
    assert snapshot() == before


def test_a_cache_key_with_a_nul_character_is_deleted_and_logged(world, admin_client):
    with warnings.catch_warnings():  # LocMemCache warns of keys memcached could not take
        warnings.simplefilter("ignore", CacheKeyWarning)
        caches["edge"].set("k:a\x00b", 1)
        response = admin_client.post(reverse("admin:django_edgejobs_cache"),
                                     {"cache": "edge", "keys": ["k:a\x00b"]})
        assert response.status_code == 302
        assert caches["edge"].get("k:a\x00b") is None
    assert LogEntry.objects.get().change_message == "Deleted keys: k:a\\x00b"
