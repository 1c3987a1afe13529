"""enqueue_on_commit: a job that exists only once a transaction on another database commits.

The jobs live on ``default`` (SQLite or PostgreSQL); ``other`` is a second database made for
each test (a SQLite file) that holds application data only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import connections, transaction
from django.utils import timezone

import django_edgejobs as ej
from django_edgejobs import InvalidPayload, UnknownJobType, enqueue_on_commit
from django_edgejobs import signals as edge_signals
from django_edgejobs.models import Job, JobEvent


class Boom(Exception):
    pass


@pytest.fixture
def other(django_db_setup: None, django_db_blocker: Any, tmp_path: Path) -> Iterator[str]:
    """Database access as in a transactional test, plus a second database alias, ``other``,
    made for this test only (a SQLite file). The project's settings keep one database, so no
    other test sees it. (Django's test cases accept only aliases configured before they start,
    hence the blocker instead of the ``django_db`` mark; the jobs written are deleted after.)"""
    alias = "other"
    config = {"ENGINE": "django.db.backends.sqlite3", "NAME": str(tmp_path / "other.sqlite3"),
              "OPTIONS": {"transaction_mode": "IMMEDIATE"}}
    with django_db_blocker.unblock():
        assert not Job.objects.exists()
        configured = connections.configure_settings({"default": connections.settings["default"],
                                                     alias: config})
        connections.settings[alias] = configured[alias]
        try:
            with connections[alias].cursor() as cursor:
                cursor.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)")
            yield alias
        finally:
            connections[alias].close()
            del connections[alias]
            del connections.settings[alias]
            JobEvent.objects.all().delete()
            Job.objects.all().delete()


@pytest.fixture
def handler(register: Callable, other: str) -> Any:
    return register("t.notify", lambda payload, ctx: None)


def order(n: int) -> None:
    """Application data written on the other database."""
    with connections["other"].cursor() as cursor:
        cursor.execute("INSERT INTO orders (n) VALUES (%s)", [n])


def orders() -> list[int]:
    with connections["other"].cursor() as cursor:
        cursor.execute("SELECT n FROM orders ORDER BY id")
        return [row[0] for row in cursor.fetchall()]


def test_the_job_is_written_when_the_other_database_commits(handler: Any) -> None:
    with transaction.atomic(using="other"):
        order(1)
        pending = enqueue_on_commit("t.notify", {"order": 1}, using="other", tags=["orders"])
        # Not yet: the jobs' database (in autocommit here) has no row.
        assert not Job.objects.exists()
        assert pending._state.adding is True
    job = Job.objects.get()
    assert job.id == pending.id
    assert (job.type, job.payload, job.tags, job.status) == (
        "t.notify", {"order": 1}, ["orders"], "pending")
    assert list(JobEvent.objects.filter(job_id=job.id).values_list("type", flat=True)) == [
        "added"]
    assert pending._state.adding is False


def test_a_rollback_of_the_other_database_leaves_no_job(handler: Any) -> None:
    with pytest.raises(Boom), transaction.atomic(using="other"):
        order(1)
        enqueue_on_commit("t.notify", {"order": 1}, using="other")
        raise Boom
    assert not Job.objects.exists()
    assert not JobEvent.objects.exists()
    assert orders() == []


def test_a_rolled_back_savepoint_drops_only_its_own_jobs(handler: Any) -> None:
    with transaction.atomic(using="other"):
        enqueue_on_commit("t.notify", {"n": 1}, using="other")
        with pytest.raises(Boom), transaction.atomic(using="other"):
            enqueue_on_commit("t.notify", {"n": 2}, using="other")
            raise Boom
    assert [j.payload for j in Job.objects.all()] == [{"n": 1}]


def test_outside_a_transaction_the_job_is_written_at_once(handler: Any) -> None:
    job = enqueue_on_commit("t.notify", {"n": 1}, using="other")
    assert Job.objects.get().id == job.id


def test_inside_an_open_jobs_transaction_the_job_joins_it(handler: Any) -> None:
    """The write happens when ``other`` commits, inside the transaction still open on the
    jobs' database: rolling that one back removes the job as well."""
    with pytest.raises(Boom), transaction.atomic(using="default"):
        with transaction.atomic(using="other"):
            enqueue_on_commit("t.notify", {"n": 1}, using="other")
        assert Job.objects.count() == 1  # written, in default's open transaction
        raise Boom
    assert not Job.objects.exists()


def test_bad_input_raises_at_the_call_not_at_commit(handler: Any) -> None:
    with transaction.atomic(using="other"):
        with pytest.raises(UnknownJobType, match=r"enqueue_on_commit: .*'t\.nope'"):
            enqueue_on_commit("t.nope", using="other")
        with pytest.raises(InvalidPayload, match=r"payload\['when'\] is a object"):
            enqueue_on_commit("t.notify", {"when": object()}, using="other")
        with pytest.raises(ValueError, match=r"delay must be >= 0"):
            enqueue_on_commit("t.notify", delay=-1, using="other")
        with pytest.raises(TypeError, match="unexpected option"):
            enqueue_on_commit("t.notify", colour="red", using="other")
        with pytest.raises(ValueError, match=r"using='nowhere' is not a database alias"):
            enqueue_on_commit("t.notify", using="nowhere")
        order(1)
    assert orders() == [1]  # the other database committed
    assert not Job.objects.exists()  # and nothing was queued for that commit


def test_options_and_delay_apply_and_the_delay_counts_from_the_write(handler: Any) -> None:
    with transaction.atomic(using="other"):
        enqueue_on_commit("t.notify", {}, using="other", delay=timedelta(minutes=5),
                          priority=7, queue="emails", max_attempts=2)
        committing = timezone.now()
    after = timezone.now()
    job = Job.objects.get()
    assert (job.priority, job.queue, job.max_attempts) == (7, "emails", 2)
    slack = timedelta(seconds=1)
    assert committing + timedelta(minutes=5) - slack <= job.run_at
    assert job.run_at <= after + timedelta(minutes=5) + slack


def test_one_idempotency_key_gives_one_job(handler: Any) -> None:
    with transaction.atomic(using="other"):
        first = enqueue_on_commit("t.notify", {"n": 1}, using="other", idempotency_key="k")
        enqueue_on_commit("t.notify", {"n": 2}, using="other", idempotency_key="k")
    assert [(j.id, j.payload) for j in Job.objects.all()] == [(first.id, {"n": 1})]


def test_job_enqueued_is_sent_once_after_the_commit(handler: Any) -> None:
    got: list = []

    def receiver(sender: type, job: Job, **kwargs: Any) -> None:
        got.append(job.payload)

    edge_signals.job_enqueued.connect(receiver, weak=False)
    try:
        with transaction.atomic(using="other"):
            enqueue_on_commit("t.notify", {"n": 1}, using="other")
            assert got == []
        assert got == [{"n": 1}]
    finally:
        edge_signals.job_enqueued.disconnect(receiver)


@pytest.mark.django_db
def test_on_the_jobs_own_database_it_waits_for_that_commit(
        handler: Any, django_capture_on_commit_callbacks: Callable) -> None:
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        job = handler.enqueue_on_commit({"n": 1})  # using=None: the default database
        assert not Job.objects.exists()
    assert len(callbacks) == 1
    assert Job.objects.get().id == job.id


def test_it_is_exported_from_the_package() -> None:
    assert ej.enqueue_on_commit is enqueue_on_commit
    assert "enqueue_on_commit" in ej.__all__
