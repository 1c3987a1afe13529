"""Failure groups in SQL: every writer of ``last_error`` stores its fingerprint
(``Job.error_group``), and ``failure_groups`` aggregates it; jobs without one (failed before
migration 0014, or by a worker of the previous version) are grouped from their stored error,
and the two ways agree."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypedDict

import pytest
from django.db import connection

from django_edgejobs import enqueue, failure_groups, get_job, retry_all_failed
from django_edgejobs.fingerprints import error_group, fingerprint
from django_edgejobs.models import Job
from django_edgejobs.services.failures import Timeline, failed_ids, grouped_failures
from django_edgejobs.store import get_store
from django_edgejobs.testing import run_jobs

pytestmark = pytest.mark.django_db


class Signup(TypedDict):
    email: str


def boom(payload: Any, ctx: Any) -> None:
    if payload.get("kind") == "value":
        raise ValueError(f"order {payload['n']} has no lines")
    raise ConnectionError(f"host 10.0.0.{payload['n']} answered 503")


@pytest.fixture
def failing(register: Callable) -> str:
    register("t.boom", boom, max_attempts=1)
    register("t.boom2", boom, max_attempts=1)
    return "t.boom"


def fail_jobs(specs: list[tuple[str, dict[str, Any]]]) -> list[Job]:
    jobs = [enqueue(type_, payload) for type_, payload in specs]
    run_jobs()
    return [get_job(j.id) for j in jobs]


def as_tuple(groups: list) -> list[tuple]:
    return [(g.fingerprint, g.exception, g.message, g.count, g.first_seen, g.last_seen,
             g.types, g.example_job_id) for g in groups]


def test_a_failure_stores_its_fingerprint_with_the_error(failing: str) -> None:
    job, = fail_jobs([(failing, {"n": 7})])
    assert job.status == "failed" and job.last_error.startswith("ConnectionError: host")
    assert job.error_group == error_group(job.last_error, job.error_history)
    assert job.error_group == fingerprint("builtins.ConnectionError",
                                          "host <n> answered <n>")


def test_a_retried_attempt_stores_it_too(register: Callable) -> None:
    register("t.flaky", boom, max_attempts=3, retry_delay=0)
    job = enqueue("t.flaky", {"n": 1, "kind": "value"})
    from django_edgejobs.runtime.worker import Worker

    assert Worker(["default"], worker_id="t-fp").run_once() == 1
    stored = get_job(job.id)
    assert stored.status == "pending" and stored.error_group == error_group(
        stored.last_error, stored.error_history)


def test_a_rejected_payload_and_a_reclaim_store_it(register: Callable) -> None:
    register("t.signup", schema=Signup, on_invalid="fail")
    rejected = enqueue("t.signup", {})
    assert rejected.error_group == error_group(rejected.last_error, rejected.error_history)
    register("t.slow", max_attempts=1)
    job = enqueue("t.slow")
    Job.objects.filter(id=job.id).update(status="processing", lease_owner="gone:1",
                                         attempts=1)
    from django_edgejobs import reclaim_stuck_jobs

    assert reclaim_stuck_jobs() == 1
    reclaimed = get_job(job.id)
    assert reclaimed.status == "failed"
    assert reclaimed.error_group == error_group(reclaimed.last_error, reclaimed.error_history)


def test_sql_and_python_grouping_agree_and_mix(failing: str) -> None:
    jobs = fail_jobs([(failing, {"n": i}) for i in range(5)]
                     + [("t.boom2", {"n": 9})]
                     + [(failing, {"n": i, "kind": "value"}) for i in range(3)])
    assert all(j.error_group for j in jobs)
    stored = as_tuple(failure_groups())
    assert [(g[1], g[3], g[6]) for g in stored] == [
        ("builtins.ConnectionError", 6, ["t.boom", "t.boom2"]),
        ("builtins.ValueError", 3, ["t.boom"])]
    latest = max((j for j in jobs if "Connection" in j.last_error),
                 key=lambda j: (j.completed_at, str(j.id)))
    assert stored[0][7] in {j.id for j in jobs if j.completed_at == latest.completed_at}
    # As if written before migration 0014 (or by an older worker): grouped in Python.
    Job.objects.update(error_group=None)
    assert as_tuple(failure_groups()) == stored
    # Half and half: one group each way, merged.
    Job.objects.filter(id__in=[j.id for j in jobs[:3]]).update(
        error_group=jobs[0].error_group)
    assert [(g[0], g[3], g[4], g[5]) for g in as_tuple(failure_groups())] == [
        (g[0], g[3], g[4], g[5]) for g in stored]


def test_the_number_of_queries_does_not_follow_the_number_of_failures(
        failing: str, django_assert_num_queries: Any) -> None:
    fail_jobs([(failing, {"n": i}) for i in range(3)]
              + [(failing, {"n": 1, "kind": "value"})])
    with django_assert_num_queries(4):  # groups, their types, unstored jobs, latest texts
        small = failure_groups()
    fail_jobs([(failing, {"n": i}) for i in range(60)]
              + [(failing, {"n": i, "kind": "value"}) for i in range(20)])
    with django_assert_num_queries(4):
        large = failure_groups()
    assert [g.count for g in small] == [3, 1] and [g.count for g in large] == [63, 21]


def test_the_timeline_from_sql_matches_each_jobs_moment(failing: str) -> None:
    jobs = fail_jobs([(failing, {"n": i}) for i in range(4)])
    now = get_store().db_now()
    for i, job in enumerate(jobs):  # spread over the last few hours
        Job.objects.filter(id=job.id).update(completed_at=now - timedelta(hours=i, minutes=7))
    end = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    timeline = Timeline(start=end - timedelta(hours=24), size=timedelta(hours=1), count=24)
    assert timeline.unit() == "hour"
    _, counts = grouped_failures(timeline=timeline)
    expected = [0] * 24
    for job in Job.objects.all():
        expected[timeline.index(job.completed_at)] += 1
    assert list(counts.values()) == [expected]
    # The same counts when read job by job (an unaligned timeline, or no stored group).
    Job.objects.update(error_group=None)
    assert list(grouped_failures(timeline=timeline)[1].values()) == [expected]


def test_failed_ids_and_retry_all_of_a_group_take_stored_and_unstored_jobs(
        failing: str) -> None:
    jobs = fail_jobs([(failing, {"n": i}) for i in range(4)]
                     + [(failing, {"n": 1, "kind": "value"})])
    group = jobs[0].error_group
    Job.objects.filter(id=jobs[1].id).update(error_group=None)
    assert set(failed_ids(error_group=group)) == {j.id for j in jobs[:4]}
    newest = failed_ids(error_group=group, limit=2)
    assert len(newest) == 2
    assert retry_all_failed(error_group=group) == 4
    assert Job.objects.get(id=jobs[4].id).status == "failed"


def test_on_postgresql_the_group_index_covers_the_type() -> None:
    """So the groups' counts, types and timelines are index-only scans there."""
    if connection.vendor != "postgresql":
        pytest.skip("INCLUDE is PostgreSQL's")
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = %s",
                       ["edgejobs_job_failed_group_idx"])
        (definition,), = cursor.fetchall()
    assert "INCLUDE (type)" in definition and "WHERE" in definition


def test_the_migration_fills_the_jobs_that_have_an_error(failing: str) -> None:
    import importlib

    from django.apps import apps

    jobs = fail_jobs([(failing, {"n": i}) for i in range(3)])
    want = {j.id: j.error_group for j in jobs}
    Job.objects.update(error_group=None)
    done = enqueue(failing, {"n": 1})  # pending, no error: left alone
    migration = importlib.import_module("django_edgejobs.migrations.0014_error_group")

    class Editor:
        pass

    editor = Editor()
    editor.connection = connection  # type: ignore[attr-defined]
    migration.fill(apps, editor)
    assert {j.id: j.error_group for j in Job.objects.filter(id__in=want)} == want
    assert get_job(done.id).error_group is None
