"""Deleting a wait token a job waits for resumes the job: the answer can never come, so its
handler's ``wait_for_token`` returns ``TokenResult(ok=False, error="token … was deleted")``
instead of the job waiting for ever (past the token's own timeout)."""

from __future__ import annotations

import pytest
from django.contrib.admin.sites import site
from django.contrib.auth import get_user_model
from django.urls import reverse

from django_edgejobs import enqueue, get_job, get_job_events
from django_edgejobs.models import Job, WaitToken
from django_edgejobs.runtime.worker import Worker

pytestmark = pytest.mark.django_db


def approval(payload, ctx):
    token = ctx.create_token(timeout=3600)
    result = ctx.wait_for_token(token.id)
    return {"ok": result.ok, "error": result.error, "token": token.id}


def run() -> int:
    return Worker(["default"], worker_id="token-deletion").run_once()


def waiting_job(register):
    register("t.approve", approval)
    job = enqueue("t.approve", max_attempts=1)
    assert run() == 1
    job = get_job(job.id)
    assert job.status == "waiting"
    return job, WaitToken.objects.get(job_id=job.id)


def assert_resumed_and_told(job, token_id, *, ran: int = 1):
    job = get_job(job.id)
    assert job.status == "pending" and job.wait_token == "" and job.attempts == 0
    assert get_job_events(job.id)[-1].data == {"token": token_id, "reason": "deleted"}
    assert run() == ran
    job = get_job(job.id)
    assert job.status == "completed", job.last_error
    assert job.result == {"ok": False, "error": f"token {token_id} was deleted",
                          "token": token_id}


def test_deleting_the_token_instance_resumes_its_job(register):
    job, token = waiting_job(register)
    token_id = token.id
    token.delete()
    assert_resumed_and_told(job, token_id)


def test_deleting_tokens_by_queryset_resumes_their_jobs(register):
    job, token = waiting_job(register)
    other, other_token = waiting_job(register)
    assert WaitToken.objects.filter(id__in=[token.id, other_token.id]).delete()[0] == 2
    assert_resumed_and_told(job, token.id, ran=2)  # runs both
    assert get_job(other.id).result["error"] == f"token {other_token.id} was deleted"


def test_deleting_a_resolved_token_changes_no_job(register):
    job, token = waiting_job(register)
    WaitToken.objects.filter(id=token.id).update(status=WaitToken.Status.TIMED_OUT)
    Job.objects.filter(id=job.id).update(status="cancelled")
    token.delete()
    assert get_job(job.id).status == "cancelled"
    assert get_job_events(job.id)[-1].type != "resumed"


def test_deleting_a_job_deletes_its_tokens_without_a_resume_event(register):
    job, token = waiting_job(register)
    Job.objects.filter(id=job.id).delete()
    assert not WaitToken.objects.filter(id=token.id).exists()
    assert "resumed" not in [e.type for e in get_job_events(job.id)]


@pytest.mark.parametrize("bulk", [False, True], ids=["delete-view", "delete-action"])
def test_the_admins_delete_resumes_the_job(register, client, bulk):
    job, token = waiting_job(register)
    admin = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(admin)
    model_admin = site._registry[WaitToken]
    opts = model_admin.model._meta
    if bulk:
        url = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
        response = client.post(url, {"action": "delete_selected", "_selected_action": [token.id],
                                     "post": "yes"})
    else:
        url = reverse(f"admin:{opts.app_label}_{opts.model_name}_delete", args=[token.id])
        response = client.post(url, {"post": "yes"})
    assert response.status_code == 302
    assert not WaitToken.objects.filter(id=token.id).exists()
    assert_resumed_and_told(job, token.id)
