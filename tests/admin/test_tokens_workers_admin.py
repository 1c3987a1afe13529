"""Wait tokens (the complete action) and workers (alive or dead) in the admin."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.urls import reverse
from django.utils import timezone

from django_edgejobs import enqueue, get_job, get_token
from django_edgejobs.models import Worker
from django_edgejobs.runtime.worker import Worker as Runner

pytestmark = pytest.mark.django_db

TOKENS = "admin:django_edgejobs_waittoken_changelist"


@pytest.fixture
def waiting(register):  # type: ignore[no-untyped-def]
    def handler(payload, ctx):
        token = ctx.create_token(tags=["approval"])
        answer = ctx.wait_for_token(token.id)
        return {"answer": answer.output}

    register("t.approve", handler)

    def make():  # type: ignore[no-untyped-def]
        job = enqueue("t.approve")
        Runner(["default"], worker_id="tokens").run_once()
        job = get_job(job.id)
        assert job.status == "waiting"
        return job, get_token(job.wait_token)

    return make


def complete(client, tokens, output=None):  # type: ignore[no-untyped-def]
    data = {"action": "complete_selected", "index": "0", "select_across": "0",
            "_selected_action": [t.pk for t in tokens]}
    if output is not None:
        data.update(apply="yes", output=output)
    return client.post(reverse(TOKENS), data)


def test_complete_asks_for_json_then_completes_and_the_job_resumes(admin_client, waiting):
    job, token = waiting()
    response = complete(admin_client, [token])
    assert response.status_code == 200 and 'name="output"' in response.content.decode()
    response = complete(admin_client, [token], output="{not json")
    assert "Not valid JSON" in response.content.decode()
    assert get_token(token.id).status == "waiting"
    response = complete(admin_client, [token], output='{"approved": true}')
    assert response.status_code == 302
    assert get_token(token.id).status == "completed"
    assert get_token(token.id).output == {"approved": True}
    assert get_job(job.id).status == "pending"
    Runner(["default"], worker_id="tokens").run_once()
    assert get_job(job.id).result == {"answer": {"approved": True}}
    assert LogEntry.objects.get().object_id == token.id


def test_complete_reports_tokens_it_could_not_complete(admin_client, waiting):
    _, token = waiting()
    complete(admin_client, [token], output="1")
    response = complete(admin_client, [token], output="2")
    messages = [str(m) for m in admin_client.get(reverse(TOKENS)).context["messages"]]
    assert response.status_code == 302
    assert any("Not completed" in m for m in messages)
    assert get_token(token.id).output == 1


def test_complete_refuses_output_that_is_too_large(admin_client, waiting, settings):
    settings.EDGEJOBS = {**settings.EDGEJOBS, "MAX_PAYLOAD_BYTES": 10}
    _, token = waiting()
    response = complete(admin_client, [token], output='"' + "x" * 50 + '"')
    assert response.status_code == 200 and "bytes" in response.content.decode()
    assert get_token(token.id).status == "waiting"


def test_complete_needs_the_permission(staff, waiting):
    _, token = waiting()
    viewer = staff("view_waittoken")
    assert "complete_selected" not in viewer.get(reverse(TOKENS)).content.decode()
    assert complete(viewer, [token], output="1").status_code == 403
    assert get_token(token.id).status == "waiting"
    allowed = staff("view_waittoken", "change_waittoken")
    assert complete(allowed, [token], output="1").status_code == 302
    assert get_token(token.id).status == "completed"


def test_token_list_and_detail_are_read_only(admin_client, waiting):
    job, token = waiting()
    html = admin_client.get(reverse(TOKENS)).content.decode()
    assert token.id in html and str(job.id)[:8] in html
    url = reverse("admin:django_edgejobs_waittoken_change", args=[token.pk])
    html = admin_client.get(url).content.decode()
    assert 'name="_save"' not in html
    assert admin_client.get(reverse(TOKENS), {"q": str(job.id)}).context["cl"].result_count == 1


def test_workers_are_listed_alive_or_dead(admin_client):
    now = timezone.now()
    Worker.objects.create(id="fresh", hostname="a", pid=1, concurrency=2, queues=["q1"])
    Worker.objects.create(id="silent", hostname="b", pid=2, concurrency=2,
                          last_heartbeat=now - timedelta(minutes=10))
    Worker.objects.create(id="gone", hostname="c", pid=3, concurrency=2, stopped_at=now)
    url = reverse("admin:django_edgejobs_worker_changelist")
    html = admin_client.get(url).content.decode()
    assert '<span class="ej-badge ej-alive">alive</span>' in html
    assert '<span class="ej-badge ej-dead">dead</span>' in html
    assert '<span class="ej-badge ej-stopped">stopped</span>' in html
    for state, expected in (("alive", {"fresh"}), ("dead", {"silent"}), ("stopped", {"gone"})):
        rows = admin_client.get(url, {"state": state}).context["cl"].result_list
        assert {w.id for w in rows} == expected
    detail = reverse("admin:django_edgejobs_worker_change", args=["fresh"])
    assert 'name="_save"' not in admin_client.get(detail).content.decode()


# -- completing the token from the waiting job's page ----------------------------------------


def job_page(job) -> str:  # type: ignore[no-untyped-def]
    return reverse("admin:django_edgejobs_job_change", args=[job.pk])


def test_the_waiting_jobs_page_completes_its_token_and_the_job_resumes(admin_client, waiting):
    job, token = waiting()
    html = admin_client.get(job_page(job)).content.decode()
    assert 'id="job-complete-token-submit"' in html and token.id in html
    response = admin_client.post(job_page(job), {"action": "complete_token",
                                                 "output": '{"approved": true}'})
    assert response.status_code == 302 and response.url == job_page(job)
    assert get_token(token.id).status == "completed"
    assert get_job(job.id).status == "pending"  # resumed: due again
    Runner(["default"], worker_id="tokens").run_once()
    assert get_job(job.id).result == {"answer": {"approved": True}}
    assert LogEntry.objects.get().change_message == "Completed (from the job's page)"
    messages = [str(m) for m in admin_client.get(job_page(job)).context["messages"]]
    assert messages == [f"Token {token.id} completed; the job resumes."]
    # Nothing left to complete: no form.
    assert 'id="job-complete-token"' not in admin_client.get(job_page(job)).content.decode()


def test_bad_json_completes_nothing_and_says_why(admin_client, waiting):
    job, token = waiting()
    admin_client.post(job_page(job), {"action": "complete_token", "output": "{nope"})
    assert get_token(token.id).status == "waiting" and get_job(job.id).status == "waiting"
    messages = [str(m) for m in admin_client.get(job_page(job)).context["messages"]]
    assert len(messages) == 1 and messages[0].startswith("Token not completed: Not valid JSON")


def test_completing_from_the_job_page_needs_the_token_permission(staff, waiting):
    job, token = waiting()
    viewer = staff("view_job", "cancel_job", "retry_job")
    assert 'id="job-complete-token"' not in viewer.get(job_page(job)).content.decode()
    assert viewer.post(job_page(job), {"action": "complete_token",
                                       "output": "1"}).status_code == 403
    forged = staff("view_job", "change_waittoken", csrf=True)
    assert forged.post(job_page(job), {"action": "complete_token",
                                       "output": "1"}).status_code == 403
    assert get_token(token.id).status == "waiting" and get_job(job.id).status == "waiting"
