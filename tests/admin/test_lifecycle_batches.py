"""The services behind the admin's actions: run_job_now and the batch retry/cancel helpers."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from django_edgejobs import enqueue, get_job, get_job_events
from django_edgejobs.models import Job, JobStatus
from django_edgejobs.runtime.worker import Worker
from django_edgejobs.services.lifecycle import (
    cancel_jobs,
    retry_job,
    retry_jobs,
    run_job_now,
    run_jobs_now,
)

pytestmark = pytest.mark.django_db


def kinds(job) -> list[str]:
    return [e.type for e in get_job_events(job.id)]


def run() -> int:
    return Worker(["default"], worker_id="admin-services").run_once()


def set_status(job, status: str, **fields) -> Job:
    Job.objects.filter(id=job.id).update(status=status, **fields)
    return get_job(job.id)


def test_run_job_now_pulls_a_later_pending_job_in(register):
    register("t.a")
    job = enqueue("t.a", delay=3600)
    assert run() == 0
    assert run_job_now(job.id) is True
    job = get_job(job.id)
    assert job.run_at <= timezone.now() + timedelta(seconds=1)
    assert kinds(job) == ["added", "edited"]
    assert get_job_events(job.id)[-1].data == {"fields": ["run_at"], "by": "run_now"}
    assert run() == 1
    assert get_job(job.id).status == "completed"


def test_run_job_now_leaves_a_due_job_and_other_states_alone(register):
    register("t.a")
    due = enqueue("t.a")
    assert run_job_now(due.id) is False  # already due: nothing to change, no event
    assert kinds(due) == ["added"]
    for status in (JobStatus.PROCESSING, JobStatus.COMPLETED, JobStatus.FAILED,
                   JobStatus.CANCELLED):
        job = set_status(enqueue("t.a", delay=60), status)
        assert run_job_now(job.id) is False, status
        assert get_job(job.id).status == status
    assert run_job_now(uuid.uuid4()) is False
    assert run_job_now("not-a-uuid") is False


def test_run_job_now_ends_a_time_wait_without_using_an_attempt(register):
    seen = []

    def handler(payload, ctx):
        ctx.wait_for(days=2)
        seen.append(ctx.attempt)
        return "woke"

    register("t.wait", handler)
    job = enqueue("t.wait", max_attempts=1)
    run()
    job = get_job(job.id)
    assert job.status == "waiting"
    assert run_job_now(job.id) is True
    assert get_job(job.id).status == "pending"
    assert run() == 1
    job = get_job(job.id)
    assert job.status == "completed" and job.result == "woke", job.last_error
    assert seen == [1]
    assert kinds(job) == ["added", "processing", "waiting", "resumed", "processing",
                          "completed"]
    assert get_job_events(job.id)[3].data == {"reason": "run_now"}


def test_run_job_now_does_not_resume_a_job_waiting_for_a_token(register):
    def handler(payload, ctx):
        token = ctx.create_token()
        ctx.wait_for_token(token.id)

    register("t.token", handler)
    job = enqueue("t.token")
    run()
    assert get_job(job.id).status == "waiting"
    assert run_job_now(job.id) is False
    assert get_job(job.id).status == "waiting"


def test_batch_helpers_change_only_the_jobs_in_an_allowed_state(register):
    register("t.a")
    failed = [set_status(enqueue("t.a"), JobStatus.FAILED, attempts=3) for _ in range(3)]
    processing = set_status(enqueue("t.a"), JobStatus.PROCESSING)
    pending = [enqueue("t.a", delay=600) for _ in range(3)]

    retried = retry_jobs([j.id for j in failed] + [processing.id, "junk"])
    assert set(retried) == {j.id for j in failed}
    assert all(get_job(j.id).status == "pending" and get_job(j.id).attempts == 0
               for j in failed)
    assert get_job(processing.id).status == "processing"

    assert set(run_jobs_now([str(j.id) for j in pending])) == {j.id for j in pending}
    cancelled = cancel_jobs([j.id for j in pending] + [processing.id])
    assert set(cancelled) == {j.id for j in pending}
    assert get_job(processing.id).status == "processing"
    assert cancel_jobs([]) == [] and retry_jobs(["x"]) == []


def test_batch_helpers_handle_more_than_one_batch(register):
    register("t.a")
    jobs = [enqueue("t.a", delay=600) for _ in range(3)]
    from django_edgejobs.services import lifecycle

    old, lifecycle.BATCH = lifecycle.BATCH, 2
    try:
        assert len(cancel_jobs([j.id for j in jobs])) == 3
        assert len(retry_jobs([j.id for j in jobs])) == 3
    finally:
        lifecycle.BATCH = old


@pytest.mark.parametrize("retry", [lambda job: retry_job(job.id), lambda job: retry_jobs([job.id]),
                                   lambda job: retry_jobs([job.id, uuid.uuid4()])],
                         ids=["retry_job", "retry_jobs-one", "retry_jobs-many"])
def test_retrying_an_expired_job_clears_its_expiry_in_single_and_bulk_form(register, retry):
    """The admin's Retry action (retry_jobs) once kept expires_at, which retry_job clears: the
    next expiry pass cancelled the retried job again."""
    from django_edgejobs.store import get_store

    register("t.a")
    job = enqueue("t.a", expires=60)
    Job.objects.filter(id=job.id).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert get_store().expire_jobs() == [job.id]
    assert get_job(job.id).status == "cancelled"
    retry(job)
    job = get_job(job.id)
    assert job.status == "pending" and job.expires_at is None and job.attempts == 0
    assert get_store().expire_jobs() == []
    assert run() == 1
    assert get_job(job.id).status == "completed"
