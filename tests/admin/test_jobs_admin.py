"""The job list, its filters and search, the detail page, and the actions."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.contrib.admin.models import CHANGE, DELETION, LogEntry
from django.urls import reverse
from django.utils import timezone

from django_edgejobs import enqueue, get_job, get_job_events
from django_edgejobs.admin import actions as job_actions
from django_edgejobs.admin.listing import CappedPaginator
from django_edgejobs.models import Job, JobEvent, JobStatus, WaitToken, Worker
from tests.admin.conftest import make_job

pytestmark = pytest.mark.django_db

LIST = "admin:django_edgejobs_job_changelist"


def detail(job) -> str:  # type: ignore[no-untyped-def]
    return reverse("admin:django_edgejobs_job_change", args=[job.pk])


def listed(client, **params) -> set[str]:  # type: ignore[no-untyped-def]
    """Ids (first 8 characters) of the jobs the list shows with these query parameters."""
    response = client.get(reverse(LIST), params)
    assert response.status_code == 200, response
    return {str(j.id)[:8] for j in response.context["cl"].result_list}


def short(*jobs) -> set[str]:  # type: ignore[no-untyped-def]
    return {str(j.id)[:8] for j in jobs}


def post_action(client, action: str, jobs, **extra):  # type: ignore[no-untyped-def]
    data = {"action": action, "index": "0", "_selected_action": [str(j.pk) for j in jobs],
            **extra}
    return client.post(reverse(LIST), data)


# -- the list ---------------------------------------------------------------------------

def test_the_list_shows_status_attempts_progress_duration_and_worker(admin_client):
    make_job("processing", progress=40, attempts=1, lease_owner="host:1")
    make_job("completed", attempts=2, started_at=timezone.now() - timedelta(seconds=3))
    html = admin_client.get(reverse(LIST)).content.decode()
    assert '<span class="ej-badge ej-processing">processing</span>' in html
    assert 'value="40"' in html and "40%" in html
    assert "2/3" in html and "host:1" in html
    assert "running" in html and " s</td>" in html  # the completed job's duration


def test_filters(admin_client):
    now = timezone.now()
    pending = make_job("pending")
    failed = make_job("failed", queue="bees", completed_at=now - timedelta(minutes=5))
    old_failed = make_job("failed", completed_at=now - timedelta(hours=3))
    b = make_job("completed", type_="t.b", tags=["user:1", "welcome"])
    overdue = make_job("pending", run_at=now - timedelta(minutes=5))
    later = make_job("pending", run_at=now + timedelta(hours=1))
    Worker.objects.create(id="alive", hostname="h", pid=1, concurrency=1)
    Worker.objects.create(id="dead", hostname="h", pid=2, concurrency=1,
                          last_heartbeat=now - timedelta(hours=1))
    running = make_job("processing", lease_owner="alive")
    stuck = make_job("processing", lease_owner="dead")
    orphan = make_job("processing", lease_owner="gone")

    assert listed(admin_client, status="failed") == short(failed, old_failed)
    assert listed(admin_client, queue="bees") == short(failed, b)
    assert listed(admin_client, type="t.b") == short(b)
    assert listed(admin_client, tag="welcome") == short(b)
    assert listed(admin_client, tag="nope") == set()
    assert listed(admin_client, attention="stuck") == short(stuck, orphan)
    assert listed(admin_client, attention="overdue") == short(overdue)
    assert listed(admin_client, attention="due") == short(pending, overdue)
    assert later.pk and listed(admin_client, finished="1h") == short(failed, b)
    assert listed(admin_client, finished="24h", status="failed") == short(failed, old_failed)
    assert listed(admin_client, worker="alive") == short(running)



def test_due_and_overdue_filters_leave_out_jobs_past_their_expiry(admin_client):
    now = timezone.now()
    expired = make_job("pending", run_at=now - timedelta(minutes=5),
                       expires_at=now - timedelta(seconds=1))
    live = make_job("pending", run_at=now - timedelta(minutes=5),
                    expires_at=now + timedelta(hours=1))
    assert listed(admin_client, attention="due") == short(live)
    assert listed(admin_client, attention="overdue") == short(live)
    assert listed(admin_client, status="pending") == short(live, expired)

def test_filter_choices_come_from_settings_registry_and_schedules_not_from_the_table(
        admin_client, django_assert_max_num_queries):
    from django_edgejobs import add_cron

    add_cron("nightly", "0 2 * * *", "t.a")
    for _ in range(5):
        make_job("completed")
    html = admin_client.get(reverse(LIST)).content.decode()
    assert "?type=t.b" in html and "?queue=bees" in html and "tag=cron%3Anightly" in html
    with django_assert_max_num_queries(14):  # no SELECT DISTINCT per filter
        admin_client.get(reverse(LIST))


def test_search_by_id_type_key_and_tag(admin_client):
    a = enqueue("t.a", idempotency_key="order-7", tags=["user:9"])
    b = enqueue("t.b", tags=["t.a"])
    assert listed(admin_client, q=str(a.id)) == short(a)
    assert listed(admin_client, q="order-7") == short(a)
    assert listed(admin_client, q="t.b") == short(b)
    assert listed(admin_client, q="user:9") == short(a)
    assert listed(admin_client, q="t.a") == short(a, b)  # the type of a, a tag of b
    assert listed(admin_client, q="tag:t.a") == short(b)
    assert listed(admin_client, q=str(uuid.uuid4())) == set()


def test_search_by_error_text(admin_client):
    timeout = make_job(JobStatus.FAILED, last_error="TimeoutError: upstream took 31 s")
    refused = make_job(JobStatus.PENDING, attempts=1,
                       last_error="ConnectionError: 100% of replicas refused")
    make_job(JobStatus.COMPLETED)
    assert listed(admin_client, q="upstream") == short(timeout)  # a plain term, any case
    assert listed(admin_client, q="UPSTREAM TOOK") == short(timeout)
    assert listed(admin_client, q="error:timeouterror") == short(timeout)
    assert listed(admin_client, q="Error") == short(timeout, refused)
    # LIKE's wildcards are the characters themselves.
    assert listed(admin_client, q="error:100%") == short(refused)
    assert listed(admin_client, q="error:%") == short(refused)
    assert listed(admin_client, q="error:_") == set()
    assert listed(admin_client, q="up") == set()  # under 3 characters: no text search


def test_search_by_payload_text_needs_the_change_permission(admin_client, staff):
    ann = enqueue("t.a", {"to": "Ann@Example.com", "password": "hunter2"})
    enqueue("t.a", {"to": "bob@example.com"})
    assert listed(admin_client, q="payload:ann@example") == short(ann)
    assert listed(admin_client, q="payload:\"to\": \"ann") == short(ann)
    viewer = staff("view_job")
    response = viewer.get(reverse(LIST), {"q": "payload:hunter2"})
    assert response.status_code == 200 and list(response.context["cl"].result_list) == []
    assert "Searching payloads needs the permission to change jobs" in response.content.decode()
    assert listed(staff("view_job", "change_job"), q="payload:hunter2") == short(ann)


def test_postgresql_answers_error_search_from_a_trigram_index(admin_client):
    from django.db import connection

    from django_edgejobs.models import Job
    from django_edgejobs.store.search import ERROR_INDEX, error_contains, payload_contains

    if connection.vendor != "postgresql":
        pytest.skip("trigram indexes are PostgreSQL's (SQLite scans one capped page)")
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # a tiny table: make the choice visible
    assert ERROR_INDEX in Job.objects.filter(error_contains("upstream")).explain()
    # The payload has no index (each claim and completion would write to it): a scan.
    assert "trgm" not in Job.objects.filter(payload_contains("ann@example")).explain()


def test_search_by_the_id_prefix_the_list_shows(admin_client):
    jobs = [enqueue("t.a") for _ in range(3)]
    a = jobs[0]
    text = str(a.id)
    assert listed(admin_client, q=text[:8]) == short(a)  # what the id column shows
    assert listed(admin_client, q=text[:8].upper()) == short(a)
    assert listed(admin_client, q=text[:13]) == short(a)  # dashes as printed
    assert listed(admin_client, q=text[:35]) == short(a)
    assert listed(admin_client, q=text[:3]) == set()  # too short to be an id prefix
    others = {str(j.id)[:8] for j in jobs[1:]}
    missing = next(p for p in ("0000", "ffff", "8888") if not any(o.startswith(p)
                                                                  for o in others | {text}))
    assert listed(admin_client, q=missing) == set()


def test_the_list_shows_the_last_error_escaped_and_cut(admin_client):
    long = "ValueError: " + "x" * 200
    failed = make_job("failed", last_error=long)
    retrying = make_job("pending", last_error="ConnectionError: <script>alert(1)</script>")
    make_job("completed", last_error="ValueError: an earlier attempt's")
    html = admin_client.get(reverse(LIST)).content.decode()
    assert f'title="{long}"' in html
    assert ">ValueError: " + "x" * 67 + "…</span>" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert" not in html
    assert "an earlier attempt" not in html  # a completed job shows no error
    assert failed.pk and retrying.pk


def test_the_date_hierarchy_probes_ranges(admin_client):
    old = make_job("completed", created_at=timezone.now() - timedelta(days=400))
    new = make_job("completed")
    response = admin_client.get(reverse(LIST))
    html = response.content.decode()
    assert f"created_at__year={old.created_at.year}" in html
    assert f"created_at__year={new.created_at.year}" in html
    now = timezone.localtime(new.created_at)
    response = admin_client.get(reverse(LIST), {"created_at__year": now.year,
                                                "created_at__month": now.month})
    assert f"created_at__day={now.day}" in response.content.decode()
    assert short(new) == {str(j.id)[:8] for j in response.context["cl"].result_list}


def test_the_count_stops_at_the_cap(admin_client, monkeypatch):
    monkeypatch.setattr(CappedPaginator, "cap", 3)
    for _ in range(5):
        make_job("completed")
    html = admin_client.get(reverse(LIST)).content.decode()
    assert "more than 3 jobs" in html
    monkeypatch.setattr(CappedPaginator, "cap", 10)
    assert "5 jobs" in admin_client.get(reverse(LIST)).content.decode()


# -- the detail page --------------------------------------------------------------------

def test_the_detail_page_shows_everything_redacted_and_truncated(admin_client, settings):
    settings.EDGEJOBS = {**settings.EDGEJOBS, "REDACT_KEYS": ["password", "api_key"]}
    job = make_job(
        "failed", payload={"user": "ann", "Password": "hunter2",
                           "deep": [{"API-KEY": "key-one-secret"}], "blob": "z" * 5000},
        result={"password": "r"}, steps={"charge": {"id": "ch_1"}},
        error_history=[{"attempt": 1, "error": "first", "traceback": "T1" * 8000, "at": "a"},
                       {"attempt": 2, "error": "second", "traceback": "T2", "at": "b"}],
        last_error="second")
    WaitToken.objects.create(job=job, tags=["refund"])
    JobEvent.objects.create(job_id=job.id, type="failed", data={"error": "second",
                                                                "password": "x"})
    html = admin_client.get(detail(job)).content.decode()
    # Secrets long enough not to turn up by chance in a CSRF token ("k1" once did).
    assert "hunter2" not in html and "key-one-secret" not in html
    assert '"password": "x"' not in html
    assert "********" in html
    assert "more characters" in html  # the long blob was cut
    assert "earlier characters not shown" in html  # the long traceback kept its end
    assert html.index("Attempt 2") < html.index("Attempt 1")  # newest error first
    assert "ch_1" in html and "tok_" in html and "refund" not in html.split("job-tokens")[0]
    assert "added" in html and "failed" in html  # events


def test_detail_buttons_follow_state_and_permissions(admin_client, staff):
    failed = make_job("failed")
    html = admin_client.get(detail(failed)).content.decode()
    assert 'id="job-retry"' in html and 'id="job-cancel"' not in html
    assert 'id="job-delete"' in html
    later = make_job("pending", run_at=timezone.now() + timedelta(hours=1))
    html = admin_client.get(detail(later)).content.decode()
    assert 'id="job-cancel"' in html and 'id="job-run_now"' in html
    assert 'id="job-retry"' not in html
    running = make_job("processing")
    html = admin_client.get(detail(running)).content.decode()
    assert "job-actions" not in html  # nothing to do with a running job, not even delete
    viewer = staff("view_job")
    html = viewer.get(detail(failed)).content.decode()
    assert "job-actions" not in html


@pytest.mark.parametrize(("status", "action", "after", "event"), [
    ("failed", "retry", "pending", "retried"),
    ("pending", "cancel", "cancelled", "cancelled"),
])
def test_detail_buttons_call_the_services_and_log(admin_client, status, action, after, event):
    job = make_job(status)
    response = admin_client.post(detail(job), {"action": action})
    assert response.status_code == 302 and response.url == detail(job)
    assert get_job(job.id).status == after
    assert get_job_events(job.id)[-1].type == event
    entry = LogEntry.objects.get(object_id=str(job.pk))
    assert entry.action_flag == CHANGE and "admin action" in entry.change_message


def test_run_now_button(admin_client):
    job = make_job("pending", run_at=timezone.now() + timedelta(days=1))
    admin_client.post(detail(job), {"action": "run_now"})
    assert get_job(job.id).run_at <= timezone.now()
    assert LogEntry.objects.filter(object_id=str(job.pk)).exists()


def test_detail_refuses_to_retry_a_processing_job(admin_client):
    job = make_job("processing")
    response = admin_client.post(detail(job), {"action": "retry"}, follow=True)
    assert get_job(job.id).status == "processing"
    assert "1 job not retried (1 processing)" in response.content.decode()
    assert not LogEntry.objects.exists()


def test_detail_post_of_an_unknown_action_is_refused(admin_client):
    job = make_job("failed")
    assert admin_client.post(detail(job), {"action": "delete_everything"}).status_code == 403
    assert admin_client.post(detail(job), {}).status_code == 403
    assert get_job(job.id).status == "failed"


# -- list actions -----------------------------------------------------------------------

def test_retry_action_retries_failed_and_cancelled_and_refuses_processing(admin_client):
    failed, cancelled = make_job("failed"), make_job("cancelled")
    processing, completed = make_job("processing"), make_job("completed")
    response = post_action(admin_client, "retry_selected",
                           [failed, cancelled, processing, completed])
    assert response.status_code == 302
    assert [get_job(j.id).status for j in (failed, cancelled, processing, completed)] == [
        "pending", "pending", "processing", "completed"]
    assert set(LogEntry.objects.values_list("object_id", flat=True)) == {str(failed.pk),
                                                                        str(cancelled.pk)}
    messages = [str(m) for m in admin_client.get(reverse(LIST)).context["messages"]]
    assert "Retry: 2 jobs retried." in messages
    assert any("2 jobs not retried (1 completed, 1 processing)" in m for m in messages)


def test_cancel_and_run_now_actions(admin_client):
    later = make_job("pending", run_at=timezone.now() + timedelta(hours=2))
    waiting = make_job("waiting", run_at=timezone.now() + timedelta(hours=2))
    post_action(admin_client, "run_now_selected", [later, waiting])
    assert get_job(later.id).run_at <= timezone.now()
    assert get_job(waiting.id).status == "pending"
    post_action(admin_client, "cancel_selected", [later, waiting])
    assert {get_job(j.id).status for j in (later, waiting)} == {"cancelled"}
    assert LogEntry.objects.filter(change_message="Cancel (admin action)").count() == 2


def test_delete_always_confirms_and_spares_a_running_job(admin_client):
    done, running = make_job("completed"), make_job("processing")
    response = post_action(admin_client, "delete_selected_jobs", [done, running])
    assert response.status_code == 200 and 'id="confirm-action"' in response.content.decode()
    assert Job.objects.count() == 2
    response = post_action(admin_client, "delete_selected_jobs", [done, running],
                           confirm="yes")
    assert response.status_code == 302
    assert list(Job.objects.values_list("id", flat=True)) == [running.id]
    assert LogEntry.objects.get().action_flag == DELETION


def test_django_delete_selected_is_replaced(admin_client):
    job = make_job("completed")
    response = post_action(admin_client, "delete_selected", [job])
    assert response.status_code == 403  # delete_selected_jobs instead: it spares running jobs
    assert Job.objects.filter(id=job.id).exists()


def test_bulk_actions_above_the_cap_ask_first(admin_client, monkeypatch):
    monkeypatch.setattr(job_actions, "CONFIRM_ABOVE", 3)
    jobs = [make_job("failed") for _ in range(4)]
    response = post_action(admin_client, "retry_selected", jobs)
    html = response.content.decode()
    assert response.status_code == 200 and 'id="confirm-action"' in html
    assert "<strong>4</strong> jobs" in html
    assert {get_job(j.id).status for j in jobs} == {"failed"}
    response = post_action(admin_client, "retry_selected", jobs, confirm="yes")
    assert response.status_code == 302
    assert {get_job(j.id).status for j in jobs} == {"pending"}
    # At or below the cap there is no question.
    response = post_action(admin_client, "cancel_selected", jobs[:3])
    assert response.status_code == 302
    assert {get_job(j.id).status for j in jobs[:3]} == {"cancelled"}


def test_select_across_applies_to_the_filtered_list_and_stops_at_max_rows(
        admin_client, monkeypatch):
    monkeypatch.setattr(job_actions, "MAX_ROWS", 2)
    jobs = [make_job("failed") for _ in range(3)]
    other = make_job("failed", queue="bees")
    url = reverse(LIST) + "?queue=default"
    response = admin_client.post(url, {"action": "retry_selected", "index": "0",
                                       "select_across": "1", "_selected_action": [
                                           str(jobs[0].pk)], "confirm": "yes"}, follow=True)
    assert sum(get_job(j.id).status == "pending" for j in jobs) == 2
    assert get_job(other.id).status == "failed"
    assert "Only the first 2 jobs were handled" in response.content.decode()


def test_events_list_filters_by_job(admin_client):
    a, b = enqueue("t.a"), enqueue("t.a")
    url = reverse("admin:django_edgejobs_jobevent_changelist")
    response = admin_client.get(url, {"job_id": str(a.id)})
    assert {e.job_id for e in response.context["cl"].result_list} == {a.id}
    response = admin_client.get(url, {"q": str(b.id)})
    assert {e.job_id for e in response.context["cl"].result_list} == {b.id}


def test_an_event_page_masks_secrets(admin_client):
    job = enqueue("t.a")
    event = JobEvent.objects.create(job_id=job.id, type="edited", data={"api_key": "sk_1",
                                                                        "fields": ["payload"]})
    html = admin_client.get(reverse("admin:django_edgejobs_jobevent_change",
                                    args=[event.pk])).content.decode()
    assert "sk_1" not in html and "payload" in html


def test_a_running_job_cannot_be_deleted_from_its_page_either(admin_client):
    job = make_job("processing")
    url = reverse("admin:django_edgejobs_job_delete", args=[job.pk])
    assert admin_client.post(url, {"post": "yes"}).status_code == 403
    assert Job.objects.filter(pk=job.pk).exists()
    done = make_job("completed")
    url = reverse("admin:django_edgejobs_job_delete", args=[done.pk])
    assert admin_client.post(url, {"post": "yes"}).status_code == 302
    assert not Job.objects.filter(pk=done.pk).exists()


def test_the_detail_page_reads_the_job_in_one_query(admin_client, django_assert_max_num_queries):
    job = make_job("failed", payload={"a": 1})
    with django_assert_max_num_queries(9):  # session, user, job, events, tokens, schedule...
        admin_client.get(detail(job))


def test_a_long_list_offers_the_dates_of_the_whole_table(admin_client, monkeypatch):
    from django_edgejobs.admin import listing

    failed = make_job("failed", created_at=timezone.now() - timedelta(days=400))
    make_job("completed")
    params = {"status": "failed"}
    html = admin_client.get(reverse(LIST), params).content.decode()
    # Only failed jobs' dates: one job, so its month's days, and no link to this year.
    assert f"created_at__year={timezone.now().year}" not in html
    monkeypatch.setattr(listing, "SMALL", 0)  # "long": probe the unfiltered index instead
    html = admin_client.get(reverse(LIST), params).content.decode()
    assert f"created_at__year={failed.created_at.year}" in html
    assert f"created_at__year={timezone.now().year}" in html


def test_every_time_on_the_job_pages_shows_the_second_and_the_time_zone(admin_client):
    from datetime import UTC, datetime

    created = datetime(2026, 5, 1, 7, 0, 3, tzinfo=UTC)
    job = make_job(JobStatus.FAILED, created_at=created, run_at=created,
                   started_at=created.replace(second=4), completed_at=created.replace(second=9),
                   error_history=[{"attempt": 1, "at": "2026-05-01T07:00:08+00:00",
                                   "error": "ValueError: boom", "traceback": ""}])
    detail = admin_client.get(reverse("admin:django_edgejobs_job_change", args=[job.id]))
    text = detail.content.decode()
    for moment in ("07:00:03 UTC", "07:00:04 UTC", "07:00:09 UTC", "07:00:08 UTC"):
        assert f"2026-05-01 {moment}" in text, moment
    listing = admin_client.get(reverse("admin:django_edgejobs_job_changelist")
                               + "?status=failed")
    assert "2026-05-01 07:00:03 UTC" in listing.content.decode()
