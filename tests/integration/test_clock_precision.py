"""Times are written at full precision from one clock, on every database.

On SQLite, Django's ``Now()`` and ``STRFTIME(…, 'NOW')`` have milliseconds while times written
from Python have microseconds: ``'…05.123'`` sorts before ``'…05.123456'``, so a job could
finish before it started, or a just-enqueued job not be due yet. Each check repeats a few
dozen times: with the millisecond clock almost every repetition fell inside the millisecond
of the write before it.
"""

from __future__ import annotations

import pytest
from django.utils import timezone

from django_edgejobs import enqueue, enqueue_many, get_job
from django_edgejobs.models import Job
from django_edgejobs.models.clock import Now
from django_edgejobs.services.lifecycle import run_job_now
from django_edgejobs.store import Finish, get_store

pytestmark = pytest.mark.django_db(transaction=True)

REPEATS = 40


def test_a_time_written_by_sql_is_not_before_one_written_from_python_just_before(register):
    register("t.clock")
    job = enqueue("t.clock")
    for _ in range(REPEATS):
        before = timezone.now()
        Job.objects.filter(id=job.id).update(updated_at=Now())
        assert get_job(job.id).updated_at >= before


def test_a_job_enqueued_just_now_is_due_now(register):
    register("t.clock")
    for _ in range(REPEATS):
        job = enqueue("t.clock")
        assert Job.objects.due().filter(id=job.id).exists()
        assert run_job_now(job.id) is False  # already due: nothing to change


def test_created_started_finished_are_ordered_at_full_precision(register):
    register("t.clock")
    store = get_store()
    jobs = enqueue_many([{"type": "t.clock", "payload": {"n": n}} for n in range(REPEATS)])
    claimed = []
    while len(claimed) < len(jobs):
        batch = store.claim("clock-test", ["default"], 8)
        assert batch
        store.finish([Finish(job_id=j.id, lease_token=j.lease_token, kind="completed",
                             attempt=j.attempts, event_data={"attempt": j.attempts})
                      for j in batch])
        claimed += batch
    for job in Job.objects.filter(id__in=[j.id for j in jobs]):
        assert job.status == "completed"
        assert job.created_at <= job.started_at <= job.completed_at, job.id
    times = [t for job in Job.objects.filter(type="t.clock")
             for t in (job.started_at, job.completed_at)]
    # Microseconds are kept (not truncated to whole milliseconds by the database's clock).
    assert any(t.microsecond % 1000 for t in times)
