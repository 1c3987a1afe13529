"""Workflows in the admin: a job's dependencies drawn on its page, a dependency wait told from
a token wait, and the batch list and detail pages with their progress."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from django_edgejobs import PermanentError, enqueue, enqueue_batch
from django_edgejobs.admin import dependencies
from django_edgejobs.models import Batch, Job, JobDependency, WaitToken
from django_edgejobs.models.job import DEPENDENCIES
from django_edgejobs.testing import run_jobs
from tests.admin.conftest import make_job

pytestmark = pytest.mark.django_db

SCRIPT = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
BATCHES = "admin:django_edgejobs_batch_changelist"
JOBS = "admin:django_edgejobs_job_changelist"


def detail(job) -> str:  # type: ignore[no-untyped-def]
    return reverse("admin:django_edgejobs_job_change", args=[job.pk])


def batch_page(batch: Batch | uuid.UUID | str) -> str:
    return reverse("admin:django_edgejobs_batch_change",
                   args=[batch.pk if isinstance(batch, Batch) else batch])


def svg_of(html: str) -> str:
    """The dependency graph's SVG element, alone."""
    found = re.search(r'<svg[^>]*id="job-dependency-graph".*?</svg>', html, re.S)
    assert found, "no dependency graph on the page"
    return found.group(0)


def table_of(html: str) -> str:
    found = re.search(r'<table id="job-dependency-table">.*?</table>', html, re.S)
    assert found, "no dependency table on the page"
    return found.group(0)


def listed(client: Client, **params: str) -> set[uuid.UUID]:
    response = client.get(reverse(JOBS), params)
    assert response.status_code == 200, response
    return {j.id for j in response.context["cl"].result_list}


@pytest.fixture
def outcomes(register: Callable) -> None:
    """``t.ok`` completes; ``t.boom`` fails for good at its first attempt."""
    def boom(payload, ctx):  # type: ignore[no-untyped-def]
        raise PermanentError("boom")

    register("t.ok", lambda payload, ctx: "ok")
    register("t.boom", boom, max_attempts=1)


# -- the job page's dependencies -----------------------------------------------------------


def test_the_graph_links_each_dependency_and_dependent_and_shows_their_status(admin_client):
    first = make_job("completed")
    second = make_job("failed", type_="t.b")
    job = enqueue("t.a", {}, depends_on=[first, second], on_dependency_failure="run")
    after = enqueue("t.b", {}, depends_on=[job])
    html = admin_client.get(detail(job)).content.decode()
    svg = svg_of(html)
    # Left to right: the dependencies, the job, its dependent; each a link to its page but
    # the job's own node.
    nodes = re.findall(r'<g class="ej-node" data-job="([^"]+)" data-status="([^"]+)"', svg)
    assert nodes == [(str(first.id), "completed"), (str(second.id), "failed"),
                     (str(job.id), "pending"), (str(after.id), "waiting")]
    xs = [int(x) for x in re.findall(r'<rect x="(\d+)"', svg)]
    assert xs[0] == xs[1] < xs[2] < xs[3]
    links = re.findall(r'<a href="([^"]+)" class="ej-node-link">', svg)
    assert links == [detail(first), detail(second), detail(after)]
    assert detail(job) not in svg
    # Each status in the badges' colour; the job is outlined; both arrows into the job are
    # dashed (it runs even if they fail), the one out of it is not.
    fills = re.findall(r'<rect [^>]*fill="(#[0-9a-f]{6})"', svg)
    assert fills == [dependencies.FILL[s] for s in ("completed", "failed", "pending",
                                                    "waiting")]
    assert svg.count('stroke-dasharray="6 4"') == 2
    assert svg.count('class="ej-edge ej-edge-run"') == 2
    assert svg.count('class="ej-edge"') == 1
    assert "<script" not in svg.lower() and "onclick" not in svg.lower()
    # The same jobs in the table, with their ids, types, badges and what a failure does.
    table = table_of(html)
    assert table.count('class="ej-dependency"') == 2 and table.count('class="ej-dependent"') == 1
    for other in (first, second, after):
        assert f'<a href="{detail(other)}">{other.id}</a>' in table
    assert '<span class="ej-badge ej-failed">failed</span>' in table
    assert table.count("this job runs anyway") == 2 and "it is cancelled" in table
    # The dependent's page: the job is on its left.
    svg = svg_of(admin_client.get(detail(after)).content.decode())
    assert re.findall(r'data-job="([^"]+)"', svg) == [str(job.id), str(after.id)]


def test_a_job_without_edges_has_no_dependencies_section(admin_client):
    html = admin_client.get(detail(make_job("pending"))).content.decode()
    assert 'id="job-dependencies"' not in html and 'id="job-dependency-graph"' not in html


def test_each_side_shows_twelve_jobs_and_counts_the_rest(admin_client):
    upstream = [enqueue("t.a", {}) for _ in range(dependencies.CAP + 2)]
    job = enqueue("t.a", {}, depends_on=upstream)
    html = admin_client.get(detail(job)).content.decode()
    svg = svg_of(html)
    assert svg.count('class="ej-node-link"') == dependencies.CAP
    assert ">and 2 more</text>" in svg
    table = table_of(html)
    assert table.count('class="ej-dependency"') == dependencies.CAP
    assert "and 2 more" in table
    shown = re.findall(r'data-job="([^"]+)"', svg)[:dependencies.CAP]
    assert shown == [str(j.id) for j in upstream[:dependencies.CAP]]  # in the order given


def test_job_types_are_escaped_in_the_graph_and_the_table(admin_client, register):
    register(SCRIPT, lambda payload, ctx: None)
    long_type = SCRIPT + "x" * 40  # cut in the node, whole in its tooltip and the table
    register(long_type, lambda payload, ctx: None)
    hostile = enqueue(SCRIPT, {})
    job = enqueue("t.a", {}, depends_on=[hostile])
    enqueue(long_type, {}, depends_on=[job])
    html = admin_client.get(detail(job)).content.decode()
    assert SCRIPT not in html
    svg, table = svg_of(html), table_of(html)
    assert f">{ESCAPED}</text>" in svg
    assert f"<title>{ESCAPED} — pending — {hostile.id}</title>" in svg
    assert f">{ESCAPED}xx…</text>" in svg  # 28 characters of the long type
    assert f"<td>{ESCAPED}</td>" in table and f"<td>{ESCAPED}{'x' * 40}</td>" in table
    page = admin_client.get(detail(hostile)).content.decode()
    assert SCRIPT not in page and ESCAPED in svg_of(page)


def test_a_dependency_wait_is_not_a_token_wait(admin_client):
    first, second = make_job("pending"), make_job("pending")
    job = enqueue("t.a", {}, depends_on=[first, second])
    assert Job.objects.get(id=job.id).wait_token == DEPENDENCIES
    html = admin_client.get(detail(job)).content.decode()
    assert "waiting for 2 dependencies" in html
    assert "waiting for token" not in html and DEPENDENCIES not in html
    assert 'id="job-complete-token"' not in html
    assert 'value="run_now"' not in html  # "Run now" is for time waits
    # One dependency finished: one left.
    JobDependency.objects.filter(job_id=job.id, depends_on_id=first.id).update(resolved=True)
    assert "waiting for 1 dependency<" in admin_client.get(detail(job)).content.decode()
    # A forged "complete token" POST completes nothing and leaves the job waiting.
    WaitToken.objects.create(id=DEPENDENCIES, job=job)  # even if such a token existed
    response = admin_client.post(detail(job), {"action": "complete_token", "output": "1"},
                                 follow=True)
    assert "waits for its dependencies, not for a token" in response.content.decode()
    stored = Job.objects.get(id=job.id)
    assert (stored.status, stored.wait_token) == ("waiting", DEPENDENCIES)
    assert WaitToken.objects.get(id=DEPENDENCIES).status == WaitToken.Status.WAITING


def test_a_token_wait_still_offers_the_token_form(admin_client):
    job = make_job("waiting", wait_token="tok_x")
    WaitToken.objects.create(id="tok_x", job=job)
    html = admin_client.get(detail(job)).content.decode()
    assert "waiting for token tok_x" in html and 'id="job-complete-token"' in html
    assert "dependenc" not in html.split('id="job-status"')[1].split("</td>")[0]


# -- batches ---------------------------------------------------------------------------------


def test_batch_list_and_detail_show_the_counts_after_the_jobs_ran(admin_client, outcomes):
    batch = enqueue_batch([{"type": "t.ok"}, {"type": "t.ok"}, {"type": "t.ok"},
                           {"type": "t.boom"}], on_complete=("t.ok", {}),
                          on_success=("t.ok", {}), description="nightly import")
    run_jobs()
    running = enqueue_batch([{"type": "t.ok"}, {"type": "t.ok"}], description="later")
    response = admin_client.get(reverse(BATCHES))
    assert response.status_code == 200
    rows = {b.id: b.edgejobs_counts for b in response.context["cl"].result_list}
    assert rows[batch.id] == {"id": str(batch.id), "total": 4, "pending": 0, "completed": 3,
                              "failed": 1, "cancelled": 0}
    assert rows[running.id] == {"id": str(running.id), "total": 2, "pending": 2,
                                "completed": 0, "failed": 0, "cancelled": 0}
    html = response.content.decode()
    assert "nightly import" in html and "later" in html
    assert "3 completed, 1 failed, 0 cancelled, 0 pending" in html
    assert "0 completed, 0 failed, 0 cancelled, 2 pending" in html
    assert '<span class="ej-badge ej-completed">finished</span>' in html
    assert '<span class="ej-badge ej-processing">running</span>' in html
    assert 'aria-label="3 completed, 1 failed, 0 cancelled, 0 pending, of 4"' in html
    assert batch_page(batch) in html

    response = admin_client.get(batch_page(batch))
    assert response.status_code == 200
    status = response.context["status"]
    assert (status.status, status.completed, status.failed, status.pending) == (
        "finished", 3, 1, 0)
    html = response.content.decode()
    assert "4 of 4 finished" in html
    assert re.search(r'id="batch-count-completed">.*?<td class="ej-num">3</td>', html, re.S)
    assert re.search(r'id="batch-count-failed">.*?<td class="ej-num">1</td>', html, re.S)
    # The callbacks: on_complete ran, on_success was cancelled by the failure.
    on_complete, on_success = (Job.objects.get(id=batch.on_complete_job),
                               Job.objects.get(id=batch.on_success_job))
    assert (on_complete.status, on_success.status) == ("completed", "cancelled")
    callbacks = html.split('id="batch-callbacks"')[1]
    assert f'<a href="{detail(on_complete)}">{on_complete.id}</a>' in callbacks
    assert f'<a href="{detail(on_success)}">{on_success.id}</a>' in callbacks
    assert '<span class="ej-badge ej-cancelled">cancelled</span>' in callbacks
    # The links to the job list filtered to the batch (and a state): its jobs only.
    members = set(Job.objects.filter(batch_id=batch.id).values_list("id", flat=True))
    assert len(members) == 4 and on_complete.id not in members
    jobs_url = reverse(JOBS) + f"?batch={batch.id}"
    assert f'href="{jobs_url}"' in html
    assert listed(admin_client, batch=str(batch.id)) == members
    failed = listed(admin_client, batch=str(batch.id), status="failed")
    assert failed == set(Job.objects.filter(batch_id=batch.id, status="failed")
                         .values_list("id", flat=True)) and len(failed) == 1
    assert listed(admin_client, batch="not-an-id") == set()
    filtered = admin_client.get(jobs_url).content.decode()
    assert "By batch" in filtered and "nightly import" in filtered
    # A member's page links to its batch.
    member = Job.objects.filter(batch_id=batch.id).first()
    assert (f'id="job-batch"><a href="{batch_page(batch)}">nightly import</a>'
            in admin_client.get(detail(member)).content.decode())


def test_the_batch_list_reads_the_counts_in_one_query_for_the_page(admin_client):
    def queries(batches: int) -> int:
        Batch.objects.all().delete()
        for i in range(batches):
            enqueue_batch([{"type": "t.a"}, {"type": "t.b"}], description=f"b{i}")
        with CaptureQueriesContext(connection) as captured:
            response = admin_client.get(reverse(BATCHES))
        assert response.status_code == 200
        assert len(response.context["cl"].result_list) == batches
        on_jobs = [q["sql"] for q in captured.captured_queries
                   if 'FROM "django_edgejobs_job"' in q["sql"]]
        assert len(on_jobs) == 1 and "GROUP BY" in on_jobs[0]  # one grouped query
        return len(captured.captured_queries)

    assert queries(2) == queries(20)


def test_a_batch_description_is_escaped_everywhere(admin_client):
    batch = enqueue_batch([{"type": "t.a"}], description=SCRIPT)
    member = Job.objects.get(batch_id=batch.id)
    for url in (reverse(BATCHES), batch_page(batch), reverse(JOBS) + f"?batch={batch.id}",
                detail(member), reverse(BATCHES) + f"?q={SCRIPT}"):
        html = admin_client.get(url).content.decode()
        assert SCRIPT not in html, url
        assert ESCAPED in html, url


def test_batches_are_read_only(admin_client):
    batch = enqueue_batch([{"type": "t.a"}], description="keep")
    assert admin_client.get(reverse("admin:django_edgejobs_batch_add")).status_code == 403
    delete = reverse("admin:django_edgejobs_batch_delete", args=[batch.pk])
    assert admin_client.get(delete).status_code == 403
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    assert admin_client.post(batch_page(batch), {"description": "changed"}).status_code == 405
    list_html = admin_client.get(reverse(BATCHES)).content.decode()
    assert 'name="action"' not in list_html and "addlink" not in list_html
    response = admin_client.post(reverse(BATCHES), {"action": "delete_selected", "index": "0",
                                                    "_selected_action": [str(batch.pk)],
                                                    "post": "yes"})
    assert response.status_code == 403
    assert Batch.objects.get(pk=batch.pk).description == "keep"
    missing = admin_client.get(batch_page(uuid.uuid4()))
    assert missing.status_code == 302  # Django's "does not exist" redirect


def test_batch_pages_need_a_view_permission(client, staff):
    batch = enqueue_batch([{"type": "t.a"}])
    urls = [reverse(BATCHES), batch_page(batch), batch_page(uuid.uuid4()),
            batch_page("not-an-id")]
    for url in urls:
        response = client.get(url)  # anonymous: the login page
        assert response.status_code == 302 and "/login/" in response.url, url
    for nobody in (staff(), staff("view_worker", "view_waittoken")):
        for url in urls:
            assert nobody.get(url).status_code == 403, url
    for viewer in (staff("view_batch"), staff("view_job")):
        assert viewer.get(reverse(BATCHES)).status_code == 200
        assert viewer.get(batch_page(batch)).status_code == 200


def test_the_batch_filter_refuses_a_nul_character(admin_client):
    assert admin_client.get(reverse(JOBS), {"batch": "a\x00b"}).status_code == 400


def test_retrying_the_failed_dependency_from_the_list_revives_its_dependents(
        admin_client, outcomes):  # type: ignore[no-untyped-def]
    """The admin's Retry action on a failed job brings back the jobs its failure cancelled,
    and they run once it completes."""
    failing = enqueue("t.boom")
    after = enqueue("t.ok", depends_on=[failing])
    then = enqueue("t.ok", depends_on=[after])
    run_jobs()
    assert set(Job.objects.filter(id__in=[after.id, then.id]).values_list(
        "status", flat=True)) == {"cancelled"}
    Job.objects.filter(id=failing.id).update(type="t.ok")  # the cause was fixed
    response = admin_client.post(reverse("admin:django_edgejobs_job_changelist"), {
        "action": "retry_selected", "index": "0", "_selected_action": [str(failing.pk)]})
    assert response.status_code == 302
    assert set(Job.objects.filter(id__in=[after.id, then.id]).values_list(
        "status", flat=True)) == {"waiting"}
    run_jobs()
    assert set(Job.objects.filter(id__in=[failing.id, after.id, then.id]).values_list(
        "status", flat=True)) == {"completed"}
