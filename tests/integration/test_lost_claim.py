"""A claim that the database committed but whose answer the worker never got (the connection
broke as the rows came back): its jobs are leased to a live worker that does not know them.
They used to stay ``processing`` for as long as that worker beat (fault row 17 hung on it,
once in a few full runs); now the worker hands them back before its next claim."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from django.db import OperationalError

from django_edgejobs import enqueue
from django_edgejobs.models import Job, JobEvent
from django_edgejobs.runtime.worker import Worker

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_jobs_of_a_claim_whose_answer_was_lost_are_handed_back_and_run(
        register: Callable, monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list = []
    register("t.lost", lambda payload, ctx: ran.append(ctx.job_id))
    ids = [enqueue("t.lost").id for _ in range(3)]
    worker = Worker(["default"], concurrency=2, burst=True, worker_id="lost-claim")
    real_claim = worker.store.claim
    lost: list = []

    def claim(owner: str, queues: list[str], limit: int, types: object = None) -> list:
        jobs = real_claim(owner, queues, limit, types)
        if not lost:  # committed, then the answer is lost on the way back
            lost.extend(j.id for j in jobs)
            raise OperationalError("consuming input failed: server closed the connection")
        return jobs

    monkeypatch.setattr(worker.store, "claim", claim)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    thread.join(60)
    assert not thread.is_alive()
    assert lost  # the first claim took jobs the worker never saw
    rows = {j.id: j for j in Job.objects.filter(id__in=ids)}
    assert {j.status for j in rows.values()} == {"completed"}
    assert sorted(ran) == sorted(ids)  # each ran once
    assert {j.attempts for j in rows.values()} == {1}  # the lost claim used no attempt
    released = JobEvent.objects.filter(job_id__in=lost, type="released")
    assert {e.job_id for e in released} == set(lost)
    assert {e.data["reason"] for e in released} == {"claim answer lost"}


def test_jobs_the_worker_holds_are_not_handed_back(register: Callable) -> None:
    register("t.held", lambda payload, ctx: None)
    worker = Worker(["default"], concurrency=1, worker_id="holder")
    enqueue("t.held")
    enqueue("t.held")
    [held] = worker.store.claim("holder", ["default"], 1)  # a lease token per claim
    [unknown] = worker.store.claim("holder", ["default"], 1)
    assert worker.store.release_unknown("holder", {held.lease_token}) == [unknown.id]
    assert Job.objects.get(id=held.id).status == "processing"
    job = Job.objects.get(id=unknown.id)
    assert (job.status, job.attempts, job.lease_owner) == ("pending", 0, "")
    assert worker.store.release_unknown("holder", {held.lease_token}) == []
    assert worker.store.release_unknown("someone-else", set()) == []
