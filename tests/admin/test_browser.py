"""The admin in a real browser: headless Chromium driven by Playwright against live_server.

Chromium comes from Debian (``scripts/ensure-browser`` installs it); these tests skip, saying
why, only when it is not there. Screenshots go to ``$EDGEJOBS_SCREENSHOT_DIR`` when it is set
(docs/images/ was made that way), else to the test's tmp_path.
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import User

from django_edgejobs import add_cron, enqueue, get_job
from django_edgejobs.models import CronSchedule, Job

CHROMIUM = os.environ.get("EDGEJOBS_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - [dev] installs it
    sync_playwright = None

pytestmark = [
    pytest.mark.skipif(sync_playwright is None,
                       reason="Playwright for Python is not installed (pip install playwright)"),
    pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK),
                       reason=f"no Chromium at {CHROMIUM}: scripts/ensure-browser could not "
                              "install it (it needs apt-get and root)"),
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture(scope="module")
def browser() -> Iterator:
    # Playwright's sync API runs an event loop in this thread; the tests' own ORM calls are
    # synchronous and never overlap it.
    old = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()
    if old is None:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    else:  # pragma: no cover
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = old


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    target = Path(os.environ.get("EDGEJOBS_SCREENSHOT_DIR") or tmp_path)
    target.mkdir(parents=True, exist_ok=True)
    return target


@pytest.fixture
def page(browser, live_server):  # type: ignore[no-untyped-def]
    User.objects.create_superuser("admin", "admin@example.com", "pw")
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "pw")
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")
    page.base = live_server.url
    yield page
    context.close()


def run_action(page, name: str) -> None:  # type: ignore[no-untyped-def]
    page.select_option("select[name=action]", name)
    page.click("button[name=index]")


def test_dashboard_shows_the_charts(page, shots):  # type: ignore[no-untyped-def]
    from tests.admin.data import populate

    populate()
    page.goto(f"{page.base}/admin/django_edgejobs/")
    page.click("#edgejobs-dashboard-link a")
    page.wait_for_selector("#chart-throughput-hour svg.edgejobs-chart")
    assert page.locator("svg.edgejobs-chart").count() == 6
    assert page.locator("#chart-throughput-hour svg rect").count() > 30
    assert page.locator("#chart-wait-hour svg polyline").count() >= 1
    box = page.locator("#chart-throughput-hour svg").bounding_box()
    assert box is not None and box["width"] > 300 and box["height"] > 80
    assert "web-1" in page.inner_text("#dashboard-workers")
    assert "daily-report" in page.inner_text("#dashboard-cron")
    page.screenshot(path=str(shots / "admin-dashboard.png"), full_page=True)
    # A number on the dashboard leads to the jobs it counts.
    page.click("#dashboard-queues a:text('emails')")
    page.wait_for_selector("#result_list")
    assert "queue=emails" in page.url


def test_the_dashboard_and_the_list_update_in_place_and_pause(page):  # type: ignore[no-untyped-def]
    job = enqueue("shop.send_email", {"to": "ann@example.com"})
    page.goto(f"{page.base}/admin/django_edgejobs/job/dashboard/?refresh=5")
    page.wait_for_selector("#ej-live-toggle")
    page.evaluate("window.edgejobsMarker = 1")  # gone if the page reloads
    processing = page.locator("#dashboard-cards li", has_text="Processing").locator(".ej-number")
    assert processing.inner_text() == "0"
    Job.objects.filter(pk=job.pk).update(status="processing", lease_owner="w")
    page.wait_for_function(
        "() => [...document.querySelectorAll('#dashboard-cards li')].some("
        "li => li.innerText.includes('Processing') && li.querySelector('.ej-number')"
        ".innerText === '1')", timeout=20_000)
    assert page.evaluate("window.edgejobsMarker") == 1
    # The job list: a row's cells change in place; a selection stays selected.
    other = enqueue("shop.send_email", {"to": "bob@example.com"})
    page.goto(f"{page.base}/admin/django_edgejobs/job/")
    page.wait_for_selector("#result_list")
    page.evaluate("window.edgejobsMarker = 2")
    page.check(f"input.action-select[value='{other.pk}']")
    Job.objects.filter(pk=job.pk).update(status="failed", last_error="ValueError: late")
    page.wait_for_selector("#result_list .ej-badge.ej-failed", timeout=20_000)
    assert page.evaluate("window.edgejobsMarker") == 2
    assert page.is_checked(f"input.action-select[value='{other.pk}']")
    assert "1 of 2 selected" in page.inner_text(".action-counter")
    # A new job changes the rows: the page offers a reload instead of moving them.
    enqueue("shop.send_email", {"to": "cy@example.com"})
    page.wait_for_selector("#ej-live-changed:not([hidden])", timeout=20_000)
    # Pause: remembered across pages.
    page.click("#ej-live-toggle")
    assert page.get_attribute("#ej-live-toggle", "data-ej-live-state") == "paused"
    page.reload()
    assert page.get_attribute("#ej-live-toggle", "data-ej-live-state") == "paused"
    page.click("#ej-live-toggle")
    assert page.get_attribute("#ej-live-toggle", "data-ej-live-state") == "on"


def test_retry_a_failed_job_from_the_list(page, shots):  # type: ignore[no-untyped-def]
    from tests.admin.data import populate

    failed = populate()["failed"]
    page.goto(f"{page.base}/admin/django_edgejobs/job/")
    # The screenshot without the navigation sidebar, so every column fits.
    page.evaluate("localStorage.setItem('django.admin.navSidebarIsOpen', 'false')")
    page.reload()
    page.wait_for_selector("#result_list")
    assert page.locator("#result_list progress").count() >= 1
    page.screenshot(path=str(shots / "admin-job-list.png"), full_page=False)
    page.goto(f"{page.base}/admin/django_edgejobs/job/?status=failed")
    page.wait_for_selector("#result_list")
    page.check(f"input.action-select[value='{failed.pk}']")
    run_action(page, "retry_selected")
    page.wait_for_selector(".messagelist")
    assert "1 job retried" in page.inner_text(".messagelist")
    assert get_job(failed.pk).status == "pending"


def test_retry_every_failure_of_one_group_in_three_interactions(page):  # type: ignore[no-untyped-def]
    from django.utils import timezone

    def fail(error: str, exception: str) -> Job:
        job = enqueue("shop.send_email", {"to": "ann@example.com"})
        Job.objects.filter(pk=job.pk).update(
            status="failed", last_error=error, completed_at=timezone.now(),
            error_history=[{"attempt": 1, "error": error, "traceback": "",
                            "exception": exception}])
        return job

    smtp = [fail(f"ConnectionError: smtp {i}.example.com refused after {i}s",
                 "builtins.ConnectionError") for i in range(4)]
    other = fail("ValueError: no address", "builtins.ValueError")
    page.goto(f"{page.base}/admin/django_edgejobs/job/dashboard/")
    page.click("#failures-link")  # 1
    page.wait_for_selector("#failure-groups")
    first = page.locator("tr.ej-failure-group").first
    assert "ConnectionError" in first.inner_text() and "smtp <n>.example.com" in first.inner_text()
    first.locator("button.ej-retry-group").click()  # 2
    assert "Retry 4 jobs?" in page.inner_text("#confirm-summary")
    page.click("#confirm-action")  # 3
    page.wait_for_selector(".messagelist")
    assert "4 jobs retried" in page.inner_text(".messagelist")
    assert {get_job(j.pk).status for j in smtp} == {"pending"}
    assert get_job(other.pk).status == "failed"


def test_complete_a_token_from_the_waiting_job_in_three_interactions(page, register):  # type: ignore[no-untyped-def]
    from django_edgejobs.runtime.worker import Worker as Runner

    def approval(payload, ctx):  # type: ignore[no-untyped-def]
        token = ctx.create_token(tags=["approval"])
        return {"answer": ctx.wait_for_token(token.id).output}

    register("t.approval", approval)
    job = enqueue("t.approval")
    Runner(["default"], worker_id="browser").run_once()
    assert get_job(job.pk).status == "waiting"
    page.goto(f"{page.base}/admin/django_edgejobs/job/dashboard/")
    page.click("#dashboard-cards a:has-text('Waiting')")  # 1
    page.click(f"#result_list a:text('{str(job.pk)[:8]}')")  # 2
    page.fill("#job-complete-token textarea", '{"approved": true}')
    page.click("#job-complete-token-submit")  # 3
    page.wait_for_selector(".messagelist")
    assert "completed; the job resumes" in page.inner_text(".messagelist")
    assert get_job(job.pk).status == "pending"


def test_cancel_a_job_from_its_detail_page(page, shots):  # type: ignore[no-untyped-def]
    job = enqueue("shop.send_email", {"to": "ann@example.com", "api_key": "sk_live_123"},
                  delay=timedelta(hours=2), tags=["welcome", "user:42"])
    Job.objects.filter(pk=job.pk).update(
        last_error="ConnectionError: smtp.example.com refused",
        error_history=[{"attempt": 1, "error": "ConnectionError: smtp.example.com refused",
                        "traceback": 'Traceback (most recent call last):\n  File "shop/jobs.py"'
                                     ', line 17, in send_order_email\n    sent = send_mail(\n'
                                     "ConnectionError: smtp.example.com refused",
                        "at": "2026-05-01T09:00:00+00:00"}], attempts=1)
    page.goto(f"{page.base}/admin/django_edgejobs/job/{job.pk}/change/")
    page.wait_for_selector("#job-payload")
    assert "sk_live_123" not in page.inner_text("#job-payload")
    page.screenshot(path=str(shots / "admin-job-detail.png"), full_page=True)
    page.click("#job-cancel")
    page.wait_for_selector(".messagelist")
    assert "1 job cancelled" in page.inner_text(".messagelist")
    assert get_job(job.pk).status == "cancelled"
    assert page.locator("#job-cancel").count() == 0  # nothing left to cancel
    assert page.locator("#job-retry").count() == 1


def test_pause_a_schedule(page):  # type: ignore[no-untyped-def]
    schedule = add_cron("nightly", "0 2 * * *", "shop.daily_report")
    page.goto(f"{page.base}/admin/django_edgejobs/cronschedule/")
    page.wait_for_selector("#result_list")
    assert "At 02:00" in page.inner_text("#result_list")
    page.check(f"input.action-select[value='{schedule.pk}']")
    run_action(page, "pause_selected")
    page.wait_for_selector(".messagelist")
    assert "Paused: nightly" in page.inner_text(".messagelist")
    assert CronSchedule.objects.get(pk=schedule.pk).enabled is False


def test_resume_and_run_a_schedule_from_the_dashboard_in_two_clicks_each(page):  # type: ignore[no-untyped-def]
    schedule = add_cron("nightly", "0 2 * * *", "shop.daily_report", enabled=True)
    page.goto(f"{page.base}/admin/django_edgejobs/job/dashboard/")
    page.click("#dashboard-cron a:text('nightly')")  # 1
    page.click("#cron-pause")  # 2
    page.wait_for_selector(".messagelist")
    assert "Paused: nightly" in page.inner_text(".messagelist")
    assert CronSchedule.objects.get(pk=schedule.pk).enabled is False
    page.click("#cron-resume")
    page.wait_for_selector("#cron-pause")
    page.click("#cron-run")
    page.wait_for_selector(".messagelist a")
    assert "enqueued job" in page.inner_text(".messagelist")
    job = Job.objects.get()
    assert CronSchedule.objects.get(pk=schedule.pk).enabled and job.type == "shop.daily_report"


def test_pause_and_resume_a_queue_from_the_dashboard_in_one_click_each(page):  # type: ignore[no-untyped-def]
    from django_edgejobs import list_queues

    enqueue("shop.send_email", {"to": "ann@example.com"}, queue="emails")
    page.goto(f"{page.base}/admin/django_edgejobs/job/dashboard/")
    page.click("#dashboard-queues tr[data-queue='emails'] button.ej-queue-pause")  # 1
    page.wait_for_selector("#dashboard-queues tr[data-queue='emails'] .ej-badge-paused")
    assert {q.name: q.paused for q in list_queues()}["emails"] is True
    page.click("#dashboard-queues tr[data-queue='emails'] button.ej-queue-resume")  # 1
    page.wait_for_selector("#dashboard-queues tr[data-queue='emails'] button.ej-queue-pause")
    assert {q.name: q.paused for q in list_queues()}["emails"] is False


def test_cancel_the_retrying_jobs_of_a_failure_group_in_three_interactions(page):  # type: ignore[no-untyped-def]
    error = "ConnectionError: partner answered 503"
    history = [{"attempt": 1, "error": error, "traceback": "",
                "exception": "builtins.ConnectionError"}]
    jobs = [enqueue("shop.webhook", {"n": n}) for n in range(3)]
    Job.objects.filter(id__in=[j.id for j in jobs]).update(
        attempts=1, last_error=error, error_history=history,
        run_at=Job.objects.get(id=jobs[0].id).run_at + timedelta(minutes=30))
    page.goto(f"{page.base}/admin/django_edgejobs/job/dashboard/")
    page.click("a:text('Failures')")  # 1
    page.wait_for_selector("#failure-groups")
    assert "partner answered <n>" in page.inner_text("#failure-groups")
    page.click("#failure-groups button.ej-cancel-group")  # 2
    assert "Cancel 3 jobs?" in page.inner_text("#confirm-summary")
    page.click("#confirm-action")  # 3
    page.wait_for_selector(".messagelist")
    assert {get_job(j.id).status for j in jobs} == {"cancelled"}


@pytest.mark.parametrize("width", [1280, 1440])
def test_no_list_clips_a_column_at_1280_px_and_up(page, width):  # type: ignore[no-untyped-def]
    """Every list and table of the app fits its box with the navigation sidebar as Django
    leaves it (open): the job list was 1,239 px in a 791 px box at 1440."""
    from tests.admin.data import populate

    populate()
    page.set_viewport_size({"width": width, "height": 900})
    for url in ("job/", "job/?status=failed", "job/dashboard/", "job/failures/?since=all",
                "waittoken/", "worker/", "cronschedule/", "jobevent/"):
        page.goto(f"{page.base}/admin/django_edgejobs/{url}")
        page.wait_for_selector("#content-main")
        sizes = page.evaluate("""() => ({
            page: document.documentElement.scrollWidth,
            tables: [...document.querySelectorAll('#content-main table')].map(t => [
                t.id || t.className, t.scrollWidth, t.parentElement.clientWidth]),
        })""")
        assert sizes["page"] <= width, (url, sizes)
        for name, table, box in sizes["tables"]:
            assert table <= box + 1, (url, name, table, box)


PHONE = {"width": 390, "height": 844}


def test_a_phone_lays_out_the_list_the_detail_the_dashboard_and_failures_at_its_width(
        page, shots):  # type: ignore[no-untyped-def]
    """At 390 px nothing makes the page wider than the screen (the dashboard laid out at
    740 px): wide tables scroll inside their own box, charts shrink to fit."""
    from tests.admin.data import populate

    populate()
    job = Job.objects.filter(status="failed").first()
    page.set_viewport_size(PHONE)
    for url, shot in (("job/dashboard/", "admin-dashboard-390.png"),
                      ("job/", "admin-job-list-390.png"),
                      (f"job/{job.id}/change/", "admin-job-detail-390.png"),
                      ("job/failures/", "admin-failures-390.png"),
                      ("waittoken/", None), ("worker/", None), ("cronschedule/", None)):
        page.goto(f"{page.base}/admin/django_edgejobs/{url}")
        page.wait_for_selector("#content-main")
        width = page.evaluate("() => document.documentElement.scrollWidth")
        wide = page.evaluate("""() => [...document.querySelectorAll('#content-main *')]
            .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1
                         && !e.closest('.ej-scroll, .results, pre, .ej-pre'))
            .slice(0, 5).map(e => e.tagName + '.' + e.className + '#' + e.id + ' '
                             + Math.round(e.getBoundingClientRect().right))""")
        assert width <= PHONE["width"], (url, width, wide)
        if shot:
            page.screenshot(path=str(shots / shot), full_page=True)


def test_screenshots_at_1440_px(page, shots):  # type: ignore[no-untyped-def]
    """The README's and the docs' pictures at a laptop's width (``EDGEJOBS_SCREENSHOT_DIR``)."""
    from tests.admin.data import populate

    populate()
    page.set_viewport_size({"width": 1440, "height": 900})
    job = Job.objects.filter(status="failed").first()
    for url, shot in (("job/dashboard/", "admin-dashboard.png"), ("job/", "admin-job-list.png"),
                      (f"job/{job.id}/change/", "admin-job-detail.png"),
                      ("job/failures/", "admin-failures.png")):
        page.goto(f"{page.base}/admin/django_edgejobs/{url}")
        page.wait_for_selector("#content-main")
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 1440, url
        page.screenshot(path=str(shots / shot), full_page=True)


def test_a_page_follows_a_job_to_completion_with_the_status_script(browser, live_server,  # type: ignore[no-untyped-def]
                                                                   register):
    """``status_url`` and ``edgejobs-status.js`` on a plain page (testproject's
    ``/follow/<id>/``), no login: updates arrive, unchanged polls are 304s, the end is
    reported once with the (redacted) result."""
    from django_edgejobs.testing import run_jobs

    def export(payload, ctx):  # type: ignore[no-untyped-def]
        ctx.set_progress(60)
        return {"rows": 3, "api_key": "sk-live"}

    register("t.export", export)
    job = enqueue("t.export")
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(15_000)
    statuses: list[int] = []
    page.on("response", lambda r: statuses.append(r.status) if "/edgejobs/status/" in r.url
            else None)
    with page.expect_response(lambda r: "/edgejobs/status/" in r.url and r.status == 304):
        page.goto(f"{live_server.url}/follow/{job.id}/")
    assert page.inner_text("#status") == "pending"
    assert run_jobs() == 1
    page.wait_for_function("document.getElementById('done').textContent !== ''")
    assert page.inner_text("#done") == 'done: {"rows":3,"api_key":"********"}'
    assert page.inner_text("#status") == "completed"
    updates = page.locator("#updates li").all_inner_texts()
    assert updates[0] == "pending null" and updates[-1].startswith("completed")
    # A 304 while nothing changed calls no onUpdate: no state twice in a row (a poll may
    # have caught the job processing).
    assert all(a != b for a, b in itertools.pairwise(updates))
    assert all(u.startswith("processing") for u in updates[1:-1])
    assert 304 in statuses and statuses.count(200) == len(updates)
    context.close()


def test_a_jobs_graph_leads_to_its_dependency_and_its_batch_fits(page, shots):  # type: ignore[no-untyped-def]
    """The dependency graph is drawn (a node per job, the page's job in the middle), a click
    on a dependency's node opens that job's page; a batch page and its job list fit 1280 px
    and a phone's width."""
    from django_edgejobs import enqueue_batch

    first = enqueue("shop.send_email", {"to": "ann@example.com"}, delay=timedelta(hours=1))
    then = enqueue("shop.send_email", {"to": "bob@example.com"}, depends_on=[first])
    batch = enqueue_batch([{"type": "shop.send_email", "payload": {"to": f"u{i}@example.com"}}
                           for i in range(5)], on_complete=("shop.send_email", {"to": "ops"}),
                          description="welcome wave")
    page.goto(f"{page.base}/admin/django_edgejobs/job/{then.pk}/change/")
    page.wait_for_selector("#job-dependency-graph")
    nodes = page.locator("#job-dependency-graph .ej-node")
    assert nodes.count() == 2
    assert page.locator("#job-dependency-graph a").count() == 1  # the page's job is no link
    page.screenshot(path=str(shots / "admin-job-dependencies.png"), full_page=True)
    page.click(f"#job-dependency-graph [data-job='{first.pk}']")
    page.wait_for_selector("#job-dependency-graph")
    assert f"/job/{first.pk}/change/" in page.url
    for width in (1280, PHONE["width"]):
        page.set_viewport_size({"width": width, "height": 900})
        for url in (f"batch/{batch.pk}/change/", "batch/", f"job/?batch={batch.pk}",
                    f"job/{batch.on_complete_job}/change/"):
            page.goto(f"{page.base}/admin/django_edgejobs/{url}")
            page.wait_for_selector("#content-main")
            wide = page.evaluate("""(w) => [...document.querySelectorAll('body *')]
                .filter(e => e.getBoundingClientRect().right > w + 1)
                .map(e => e.tagName + '#' + e.id + '.' + e.className + ' ' +
                     Math.round(e.getBoundingClientRect().right)).slice(0, 12)""", width)
            assert page.evaluate("document.documentElement.scrollWidth") <= width, (url, wide)
    page.goto(f"{page.base}/admin/django_edgejobs/batch/{batch.pk}/change/")
    assert page.inner_text("#batch-finished") == "0 of 5 finished"
