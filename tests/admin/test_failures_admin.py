"""The Failures page: failed jobs grouped by what went wrong with a sparkline each, the job
list's failure-group filter, "Retry all" of one group through the list's own Retry action,
and "Cancel retrying" of the group's jobs still retrying through its Cancel action."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.urls import reverse
from django.utils import timezone

from django_edgejobs import failure_groups, get_job
from django_edgejobs.admin import actions as job_actions
from django_edgejobs.models import Job
from tests.admin.conftest import make_job

pytestmark = pytest.mark.django_db

FAILURES = "admin:django_edgejobs_failures"
LIST = "admin:django_edgejobs_job_changelist"


def failed(error: str, exception: str, ago: timedelta = timedelta(minutes=5),  # type: ignore[no-untyped-def]
           **fields):
    return make_job("failed", last_error=error, completed_at=timezone.now() - ago,
                    error_history=[{"attempt": 1, "error": error, "traceback": "",
                                    "exception": exception}], **fields)


@pytest.fixture
def groups():  # type: ignore[no-untyped-def]
    conn = [failed(f"ConnectionError: host 10.0.0.{i} answered 503", "builtins.ConnectionError")
            for i in range(3)]
    value = [failed("ValueError: bad <b>input</b>", "builtins.ValueError", type_="t.b")]
    old = [failed("KeyError: 'gone'", "builtins.KeyError", ago=timedelta(days=3))]
    return {"conn": conn, "value": value, "old": old}


def fingerprint_of(job) -> str:  # type: ignore[no-untyped-def]
    exception = get_job(job.id).error_history[-1]["exception"]
    return next(g.fingerprint for g in failure_groups() if g.exception == exception)


def rows(html: str) -> list[tuple[str, str]]:
    """(count, fingerprint) of each group row, in order."""
    return [(count, fp) for fp, count in re.findall(
        r'data-fingerprint="([0-9a-f]{12})">\s*<td class="ej-num"><a href="[^"]*">(\d+)</a>',
        html)]


def test_the_page_groups_failures_largest_first_within_the_window(admin_client, groups):
    response = admin_client.get(reverse(FAILURES))
    html = response.content.decode()
    assert response.status_code == 200
    assert [c for c, _ in rows(html)] == ["3", "1"]  # the KeyError is 3 days old
    assert "builtins.ConnectionError</strong>: host <n> answered <n>" not in html  # escaped
    assert "host &lt;n&gt; answered &lt;n&gt;" in html
    assert "bad &lt;b&gt;input&lt;/b&gt;" in html
    assert "4 failed jobs in 2 groups." in html
    assert [c for c, _ in rows(admin_client.get(reverse(FAILURES) + "?since=all")
                                .content.decode())] == ["3", "1", "1"]
    assert rows(admin_client.get(reverse(FAILURES) + "?since=1h").content.decode()) == rows(html)
    # An unknown window is the default one.
    assert rows(admin_client.get(reverse(FAILURES) + "?since=1y").content.decode()) == rows(html)


def test_no_failures_says_so(admin_client):
    make_job("completed")
    html = admin_client.get(reverse(FAILURES)).content.decode()
    assert "No job failed for good within 24h." in html


def test_the_dashboard_and_the_job_list_link_to_it(admin_client):
    url = reverse(FAILURES)
    assert f'href="{url}"' in admin_client.get(reverse("admin:django_edgejobs_dashboard")
                                               ).content.decode()
    assert f'href="{url}"' in admin_client.get(reverse(LIST)).content.decode()


def test_a_group_count_links_to_the_list_of_its_jobs(admin_client, groups):
    fp = fingerprint_of(groups["conn"][0])
    response = admin_client.get(reverse(LIST), {"status": "failed", "error_group": fp})
    assert {j.id for j in response.context["cl"].result_list} == {j.id for j in groups["conn"]}
    # Not a fingerprint: nothing, not an error page.
    response = admin_client.get(reverse(LIST), {"error_group": "nope"})
    assert response.status_code == 200 and list(response.context["cl"].result_list) == []


def retry_all(client, fp: str, example, **extra):  # type: ignore[no-untyped-def]
    """What the page's "Retry all" button posts."""
    url = reverse(LIST) + f"?status=failed&error_group={fp}"
    return client.post(url, {"action": "retry_selected", "select_across": "1", "index": "0",
                             "_selected_action": str(example.id), **extra})


def test_retry_all_retries_the_group_and_nothing_else(admin_client, groups):
    html = admin_client.get(reverse(FAILURES) + "?since=all").content.decode()
    fp = fingerprint_of(groups["conn"][0])
    assert f'action="{reverse(LIST)}?status=failed&amp;error_group={fp}"' in html
    # The whole group always asks first (3 jobs, under the list's threshold of 100): the
    # page's counts are a moment old; the confirmation says what it takes now.
    response = retry_all(admin_client, fp, groups["conn"][0])
    assert response.status_code == 200 and "<strong>3</strong> jobs" in response.content.decode()
    assert {get_job(j.id).status for j in groups["conn"]} == {"failed"}
    response = retry_all(admin_client, fp, groups["conn"][0], confirm="yes")
    assert response.status_code == 302
    assert {get_job(j.id).status for j in groups["conn"]} == {"pending"}
    assert {get_job(j.id).status for j in groups["value"] + groups["old"]} == {"failed"}
    assert set(LogEntry.objects.values_list("object_id", flat=True)) == {
        str(j.pk) for j in groups["conn"]}


def test_retrying_selected_jobs_of_a_group_asks_only_above_the_threshold(admin_client, groups,
                                                                         monkeypatch):
    """Ticked rows of a group's list (not "all of the group") follow the list's rule."""
    fp = fingerprint_of(groups["conn"][0])
    url = reverse(LIST) + f"?status=failed&error_group={fp}"
    data = {"action": "retry_selected", "index": "0",
            "_selected_action": [str(j.id) for j in groups["conn"][:2]]}
    assert admin_client.post(url, data).status_code == 302
    assert [get_job(j.id).status for j in groups["conn"]] == ["pending", "pending", "failed"]
    monkeypatch.setattr(job_actions, "CONFIRM_ABOVE", 0)
    data["_selected_action"] = [str(groups["conn"][2].id)]
    assert admin_client.post(url, data).status_code == 200
    assert get_job(groups["conn"][2].id).status == "failed"


def test_retry_all_of_a_large_group_asks_first(admin_client, groups, monkeypatch):
    monkeypatch.setattr(job_actions, "CONFIRM_ABOVE", 2)
    fp = fingerprint_of(groups["conn"][0])
    response = retry_all(admin_client, fp, groups["conn"][0])
    assert response.status_code == 200 and "<strong>3</strong> jobs" in response.content.decode()
    assert {get_job(j.id).status for j in groups["conn"]} == {"failed"}
    response = retry_all(admin_client, fp, groups["conn"][0], confirm="yes")
    assert response.status_code == 302
    assert {get_job(j.id).status for j in groups["conn"]} == {"pending"}


def test_without_the_retry_permission_there_is_no_button_and_no_retry(staff, groups):
    viewer = staff("view_job")
    html = viewer.get(reverse(FAILURES)).content.decode()
    assert rows(html) and "Retry all" not in html
    fp = fingerprint_of(groups["conn"][0])
    response = retry_all(viewer, fp, groups["conn"][0])
    assert response.status_code in (302, 403)
    assert {get_job(j.id).status for j in groups["conn"]} == {"failed"}
    assert staff().get(reverse(FAILURES)).status_code == 403  # no view permission


def test_the_page_only_reads(admin_client, groups):
    assert admin_client.post(reverse(FAILURES)).status_code == 405


def test_retry_all_needs_the_csrf_token(staff, groups):
    client = staff("view_job", "retry_job", csrf=True)
    fp = fingerprint_of(groups["conn"][0])
    assert retry_all(client, fp, groups["conn"][0]).status_code == 403
    assert {get_job(j.id).status for j in groups["conn"]} == {"failed"}


def retrying(error: str, exception: str, **fields):  # type: ignore[no-untyped-def]
    """A job that failed an attempt and waits for its retry (pending, its error kept)."""
    return make_job("pending", last_error=error, attempts=1,
                    run_at=timezone.now() + timedelta(minutes=10),
                    error_history=[{"attempt": 1, "error": error, "traceback": "",
                                    "exception": exception}], **fields)


def test_each_group_has_a_sparkline_of_when_its_jobs_failed(admin_client, groups):
    from django_edgejobs.admin.failures import _timeline
    from django_edgejobs.store import get_store

    failed("ConnectionError: host 10.0.0.9 answered 503", "builtins.ConnectionError",
           ago=timedelta(hours=5, minutes=10))
    before = _timeline("24h", get_store().db_now())
    html = admin_client.get(reverse(FAILURES)).content.decode()
    after = _timeline("24h", get_store().db_now())
    conn = html[html.index(f'data-fingerprint="{fingerprint_of(groups["conn"][0])}"'):]
    spark = conn[conn.index('<svg class="ej-spark"'):conn.index("</svg>")]
    counts = [int(n) for n in re.findall(r": ([\d,]+)</title>", spark)]
    # 24 hourly bars, on whole hours (the last holds now): the three failures of 5 minutes
    # ago in the bar of their hour, the fourth in the bar 5 h 10 min before. (The page reads
    # the clock between ``before`` and ``after``: an hour may turn in between.)
    moments = [get_job(job.id).completed_at for job in
               [*groups["conn"], *Job.objects.filter(last_error__contains="10.0.0.9")]]

    def expected(timeline):  # type: ignore[no-untyped-def]
        out = [0] * 24
        for moment in moments:
            out[timeline.index(moment)] += 1
        return out

    assert len(counts) == 24 and counts in (expected(before), expected(after))
    assert sum(counts) == 4 and before.start.minute == 0 and before.unit() == "hour"
    assert spark.count("<rect") == 24


def test_jobs_still_retrying_after_a_groups_failure_are_counted_and_cancelled(
        admin_client, groups):
    fp = fingerprint_of(groups["conn"][0])
    again = [retrying("ConnectionError: host 10.0.0.7 answered 503", "builtins.ConnectionError")
             for _ in range(2)]
    only = retrying("TimeoutError: upstream took 31 s", "builtins.TimeoutError")
    fine = make_job("pending")
    html = admin_client.get(reverse(FAILURES)).content.decode()
    assert "; 3 jobs still retrying after one of these failures." in html
    row = html[html.index(f'data-fingerprint="{fp}"'):]
    row = row[:row.index("</tr>")]
    retrying_url = f"{reverse(LIST)}?status=pending&amp;error_group={fp}"
    assert f'<a class="ej-retrying" href="{retrying_url}">2</a>' in row
    assert "Cancel retrying" in row and "Retry all" in row
    # A group with jobs retrying and none failed for good yet is listed too.
    assert "builtins.TimeoutError</strong>: upstream took &lt;n&gt; s" in html
    # The count's link lists exactly those jobs; the button cancels exactly those.
    listed = admin_client.get(reverse(LIST), {"status": "pending", "error_group": fp})
    assert {j.id for j in listed.context["cl"].result_list} == {j.id for j in again}
    cancel = {"action": "cancel_selected", "select_across": "1", "index": "0",
              "_selected_action": str(again[0].id)}
    response = admin_client.post(retrying_url.replace("&amp;", "&"), cancel)
    assert response.status_code == 200 and "<strong>2</strong> jobs" in response.content.decode()
    assert {get_job(j.id).status for j in again} == {"pending"}
    response = admin_client.post(retrying_url.replace("&amp;", "&"), {**cancel, "confirm": "yes"})
    assert response.status_code == 302
    assert {get_job(j.id).status for j in again} == {"cancelled"}
    assert {get_job(j.id).status for j in (only, fine)} == {"pending"}
    assert {get_job(j.id).status for j in groups["conn"]} == {"failed"}


def test_without_the_cancel_permission_there_is_no_cancel_button(staff, groups):
    retrying("ConnectionError: host 10.0.0.7 answered 503", "builtins.ConnectionError")
    viewer = staff("view_job", "retry_job")
    html = viewer.get(reverse(FAILURES)).content.decode()
    assert "Retry all" in html and "Cancel retrying" not in html
