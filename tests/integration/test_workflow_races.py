"""Settling dependencies at the same instant from several connections: a dependent becomes due
exactly once (one ``resumed`` event), never zero times, however the settles interleave.

Each round: a job D waits for A and B, both just finished; threads, each on its own
connection, released together by a barrier, settle A and B (each twice: a worker's settle and
a duplicate, as the resumer's sweep or the enqueue's after-commit settle would be)."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connections

from django_edgejobs.models import Job, JobDependency, JobEvent
from django_edgejobs.models.job import DEPENDENCIES
from django_edgejobs.store import get_store

pytestmark = pytest.mark.django_db(transaction=True)

ROUNDS = 25


def job(status: str, **extra: Any) -> Job:
    return Job.objects.create(type="t.race", status=status, **extra)


def together(calls: list[Callable[[], Any]]) -> None:
    barrier = threading.Barrier(len(calls))
    errors: list[BaseException] = []

    def run(call: Callable[[], Any]) -> None:
        try:
            barrier.wait(10)
            call()
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(c,)) for c in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors


@pytest.mark.parametrize("failure", ["completed", "failed"])
def test_the_last_two_dependencies_settled_at_once_make_the_dependent_due_once(
        failure: str) -> None:
    """``failed`` with ``on_dependency_failure="run"``: the same count, another outcome."""
    store = get_store()
    dependents = []
    for _ in range(ROUNDS):
        a, b = job("completed"), job(failure)
        d = job("waiting", wait_token=DEPENDENCIES)
        JobDependency.objects.bulk_create([
            JobDependency(job=d, depends_on=a, on_failure="run"),
            JobDependency(job=d, depends_on=b, on_failure="run")])
        together([lambda a=a: store.settle([a.id]), lambda b=b: store.settle([b.id]),
                  lambda a=a: store.settle([a.id]), lambda b=b: store.settle([b.id])])
        dependents.append(d.id)
    assert Counter(Job.objects.filter(id__in=dependents).values_list("status", flat=True)) \
        == {"pending": ROUNDS}
    resumed = Counter(JobEvent.objects.filter(job_id__in=dependents, type="resumed")
                      .values_list("job_id", flat=True))
    assert resumed == dict.fromkeys(dependents, 1)
    assert not JobDependency.objects.filter(resolved=False).exists()


def test_a_failure_and_a_completion_at_once_cancel_the_dependent_once() -> None:
    store = get_store()
    dependents = []
    for _ in range(ROUNDS):
        a, b = job("completed"), job("failed")
        d = job("waiting", wait_token=DEPENDENCIES)
        JobDependency.objects.bulk_create([JobDependency(job=d, depends_on=a),
                                           JobDependency(job=d, depends_on=b)])
        together([lambda a=a: store.settle([a.id]), lambda b=b: store.settle([b.id])])
        dependents.append(d.id)
    assert set(Job.objects.filter(id__in=dependents).values_list("status", flat=True)) == {
        "cancelled"}
    events = Counter(JobEvent.objects.filter(job_id__in=dependents).values_list("type",
                                                                                flat=True))
    assert events == {"cancelled": ROUNDS}


def test_a_dependency_completing_while_the_enqueue_commits_is_never_missed() -> None:
    """The enqueue's settle after its commit (``lock=True``) and the worker's settle after
    its completion race; whichever way they interleave, the dependent ends due, once."""
    store = get_store()
    dependents = []
    for _ in range(ROUNDS):
        a = job("processing", lease_token=uuid.uuid4())
        d = job("waiting", wait_token=DEPENDENCIES)
        JobDependency.objects.create(job=d, depends_on=a)

        def complete(a: Job = a) -> None:
            from django_edgejobs.store import Finish

            store.finish([Finish(a.id, a.lease_token, "completed")])

        together([complete, lambda a=a: store.settle([a.id], lock=True)])
        dependents.append(d.id)
    resumed = Counter(JobEvent.objects.filter(job_id__in=dependents, type="resumed")
                      .values_list("job_id", flat=True))
    assert resumed == dict.fromkeys(dependents, 1)
    assert set(Job.objects.filter(id__in=dependents).values_list("status", flat=True)) == {
        "pending"}


def blocked_on_a_lock(count: int) -> bool:
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                       "AND datname = current_database()")
        return cursor.fetchone()[0] >= count


def test_the_settle_after_the_enqueue_waits_for_a_completion_being_written(vendor: str) -> None:
    """PostgreSQL, made deterministic: the worker's completion statement starts (its
    snapshot taken) before the enqueue commits the edge, so its look for dependents cannot
    see it; it is held on the job's row lock until after that commit. The enqueue's settle
    after its commit must then wait for the completion (``lock=True``) rather than read the
    job as still processing, or the dependent would wait for ever. (SQLite: one writer at a
    time, no such interleaving.)"""
    if vendor != "postgresql":
        pytest.skip("SQLite runs one write transaction at a time")
    from django_edgejobs.store import Finish
    from tests.conftest import wait_for

    store = get_store()
    a = job("processing", lease_token=uuid.uuid4())
    d = job("waiting", wait_token=DEPENDENCIES)
    holder = threading.Event()
    release = threading.Event()

    def hold() -> None:  # another session holds a's row lock for a moment, as an UPDATE does
        # (FOR NO KEY UPDATE: the edge's foreign key check, FOR KEY SHARE, is not held up)
        from django.db import transaction

        try:
            with transaction.atomic():
                list(Job.objects.select_for_update(no_key=True).filter(id=a.id)
                     .values_list("id"))
                holder.set()
                release.wait(30)
        finally:
            connections.close_all()

    def complete() -> None:
        try:
            store.finish([Finish(a.id, a.lease_token, "completed")])
        finally:
            connections.close_all()

    threads = [threading.Thread(target=hold)]
    threads[0].start()
    assert holder.wait(10)
    threads.append(threading.Thread(target=complete))
    threads[1].start()
    wait_for(lambda: blocked_on_a_lock(1), message="the completion waits for the row")
    JobDependency.objects.create(job=d, depends_on=a)  # the enqueue commits its edge

    def settle() -> None:
        try:
            store.settle([a.id], lock=True)
        finally:
            connections.close_all()

    threads.append(threading.Thread(target=settle))
    threads[2].start()
    wait_for(lambda: blocked_on_a_lock(2), message="the settle waits for the row too")
    release.set()
    for t in threads:
        t.join(30)
    assert Job.objects.get(id=a.id).status == "completed"
    assert Job.objects.get(id=d.id).status == "pending"
