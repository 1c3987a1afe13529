"""The management API of the operators' issue: list_jobs' new filters and keyset paging,
edit_all_pending, failure_groups and retry_all_failed (every database the suite runs on)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from django_edgejobs import (
    FailureGroup,
    edit_all_pending,
    enqueue_many,
    failure_groups,
    list_jobs,
    retry_all_failed,
)
from django_edgejobs.fingerprints import describe_failure, fingerprint, normalise
from django_edgejobs.models import Job, JobEvent, JobStatus
from tests.integration.test_jobs_api import make

pytestmark = pytest.mark.django_db

T0 = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)


@dataclass
class Order:
    id: int

    def __post_init__(self) -> None:
        if self.id < 0:
            raise ValueError("an order id is never negative")


@pytest.fixture(autouse=True)
def handlers(register: Callable) -> None:
    register("t.a", lambda payload, ctx: None)
    register("t.b", lambda payload, ctx: None, queue="bees")
    register("t.order", lambda payload, ctx: None, schema=Order)


def failed(error: str, exception: str | None, *, type_: str = "t.a", at: datetime = T0,
           **fields: Any) -> Job:
    entry = {"attempt": 1, "error": error, "traceback": ""}
    if exception is not None:
        entry["exception"] = exception
    return make(JobStatus.FAILED, type_, last_error=error, error_history=[entry],
                completed_at=at, **fields)


def ids(jobs: list[Job]) -> list[uuid.UUID]:
    return [j.id for j in jobs]


# -- list_jobs: filters -------------------------------------------------------------------


def test_list_jobs_filters_by_priority_run_at_and_created_at() -> None:
    a = make(priority=5, run_at=T0, created_at=T0)
    b = make(priority=5, run_at=T0 + timedelta(hours=1), created_at=T0 + timedelta(hours=1))
    c = make(priority=0, run_at=T0 + timedelta(hours=2), created_at=T0 + timedelta(hours=2))
    assert ids(list_jobs(priority=5)) == [b.id, a.id]
    assert ids(list_jobs(priority=0)) == [c.id]
    # from: inclusive; to: exclusive.
    assert ids(list_jobs(run_at_from=T0 + timedelta(hours=1))) == [c.id, b.id]
    assert ids(list_jobs(run_at_to=T0 + timedelta(hours=1))) == [a.id]
    assert ids(list_jobs(created_from=T0, created_to=T0 + timedelta(hours=2))) == [b.id, a.id]
    assert ids(list_jobs(priority=5, created_from=T0 + timedelta(minutes=1))) == [b.id]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"priority": "high"}, "priority must be an integer or None, got 'high'"),
    ({"priority": True}, "priority must be an integer or None, got True"),
    ({"run_at_from": "2030-06-01"}, "run_at_from must be a datetime or None"),
    ({"created_to": 5}, "created_to must be a datetime or None, got 5"),
    ({"run_at_to": datetime(2030, 6, 1)}, "run_at_to must be an aware datetime"),
    ({"before": "not-an-id"}, "before must be a Job or the id of one, got 'not-an-id'"),
    ({"before": uuid.UUID(int=7)}, "(no such job)"),
])
def test_list_jobs_names_a_bad_argument(kwargs: dict, message: str) -> None:
    make()
    with pytest.raises(ValueError) as exc:
        list_jobs(**kwargs)
    assert message in str(exc.value)


# -- list_jobs: keyset paging -------------------------------------------------------------


def pages(size: int, **filters: Any) -> list[list[Job]]:
    got, before = [], None
    while True:
        page = list_jobs(limit=size, before=before, **filters)
        if not page:
            return got
        got.append(page)
        before = page[-1]


def test_pages_by_before_cover_every_job_once_in_order() -> None:
    made = [make(created_at=T0 + timedelta(seconds=i)) for i in range(7)]
    # Three jobs created at the same instant: the id breaks the tie, no job is lost between
    # pages however the page boundary falls.
    Job.objects.filter(id__in=[made[2].id, made[3].id, made[4].id]).update(created_at=T0)
    everything = ids(list_jobs(limit=None))
    assert sorted(everything) == sorted(ids(made))
    for size in (1, 2, 3, 7, 50):
        assert [j.id for page in pages(size) for j in page] == everything
    # An id (UUID or string) works as well as the job.
    first = list_jobs(limit=3)
    assert ids(list_jobs(limit=3, before=str(first[-1].id))) == everything[3:6]
    assert ids(list_jobs(limit=3, before=first[-1].id)) == everything[3:6]


def test_jobs_enqueued_between_pages_neither_repeat_nor_shift_the_next_page() -> None:
    old = [make(created_at=T0 + timedelta(seconds=i)) for i in range(6)]
    first = list_jobs(limit=3)
    enqueue_many([{"type": "t.a", "payload": {}} for _ in range(5)])  # newer: not after it
    second = list_jobs(limit=3, before=first[-1])
    assert ids(first) + ids(second) == [j.id for j in reversed(old)]


def test_paging_keeps_the_other_filters() -> None:
    for i in range(5):
        make(type_="t.a", created_at=T0 + timedelta(seconds=i))
        make(type_="t.b", created_at=T0 + timedelta(seconds=i))
    got = [j for page in pages(2, type="t.b") for j in page]
    assert len(got) == 5 and {j.type for j in got} == {"t.b"}


# -- edit_all_pending -------------------------------------------------------------------


def test_edit_all_pending_changes_only_the_pending_jobs_that_match() -> None:
    targets = [make(tags=["x"]) for _ in range(3)]
    other_type = make(type_="t.b", tags=["x"])
    untagged = make()
    running = make(JobStatus.PROCESSING, tags=["x"])
    # queue and tags are filters here (the changes are the other editable fields).
    assert edit_all_pending(type="t.a", tags=["x"], queue="default", priority=9,
                            max_attempts=7) == 3
    for job in targets:
        job.refresh_from_db()
        assert (job.priority, job.max_attempts) == (9, 7)
        assert JobEvent.objects.filter(job_id=job.id, type="edited").get().data == {
            "fields": ["max_attempts", "priority"]}
    for job in (other_type, untagged, running):
        before = job.priority, job.max_attempts
        job.refresh_from_db()
        assert (job.priority, job.max_attempts) == before
        assert not JobEvent.objects.filter(job_id=job.id, type="edited").exists()


def test_edit_all_pending_works_in_batches() -> None:
    enqueue_many([{"type": "t.a", "payload": {}} for _ in range(1203)])
    assert edit_all_pending(priority=3) == 1203
    assert Job.objects.filter(priority=3).count() == 1203


@pytest.mark.parametrize(("changes", "message"), [
    ({"priority": "high"}, "priority"),
    ({"status": "completed"}, "edit_all_pending: cannot edit status"),
    ({"max_attempts": None}, "edit_all_pending: max_attempts cannot be None"),
    ({"timeout": -1}, "timeout"),
])
def test_a_bad_value_for_edit_all_pending_changes_nothing(changes: dict, message: str) -> None:
    jobs = [make() for _ in range(3)]
    before = [Job.objects.filter(id=j.id).values().get() for j in jobs]
    with pytest.raises(ValueError, match=message):
        edit_all_pending(**changes)
    assert [Job.objects.filter(id=j.id).values().get() for j in jobs] == before
    assert not JobEvent.objects.filter(type="edited").exists()


def test_edit_all_pending_checks_a_payload_against_every_matched_type_first() -> None:
    plain = make()
    order = make(type_="t.order", payload={"id": 1})
    with pytest.raises(ValueError, match="an order id is never negative"):
        edit_all_pending(payload={"id": -1})
    for job, payload in ((plain, {}), (order, {"id": 1})):
        job.refresh_from_db()
        assert job.payload == payload
    assert edit_all_pending(payload={"id": 2}) == 2
    order.refresh_from_db()
    assert order.payload == {"id": 2}


def test_edit_all_pending_without_changes_changes_nothing() -> None:
    make()
    assert edit_all_pending() == 0
    assert not JobEvent.objects.filter(type="edited").exists()


# -- failure groups -----------------------------------------------------------------------


def test_normalise_takes_out_numbers_ids_and_hex() -> None:
    job_id = uuid.uuid4()
    assert normalise(f"job {job_id} at 10.0.0.7:5432 answered 503 after 3.25s") == (
        "job <id> at <n> answered <n> after <n>s")
    assert normalise("sha 9f86d081884c7d65 not found; v2 kept") == (
        "sha <hex> not found; v2 kept")
    assert normalise("first line\ntraceback follows") == "first line"
    assert normalise("") == ""


def test_describe_failure_prefers_the_stored_exception_path() -> None:
    assert describe_failure("ValueError: bad 3", [{"exception": "builtins.ValueError"}]) == (
        "builtins.ValueError", "bad <n>")
    assert describe_failure("ValueError: bad 3", []) == ("ValueError", "bad <n>")
    assert describe_failure("TimeoutError", None) == ("TimeoutError", "")
    assert describe_failure("exceeded its timeout of 60s", None) == (
        "error", "exceeded its timeout of <n>s")


def test_failure_groups_group_by_class_and_normalised_message() -> None:
    c1 = failed("ConnectionError: 10.0.0.7 answered 503", "builtins.ConnectionError",
                at=T0)
    c2 = failed("ConnectionError: 10.0.0.9 answered 502", "builtins.ConnectionError",
                type_="t.b", at=T0 + timedelta(minutes=5))
    c3 = failed("ConnectionError: 10.0.0.8 answered 500", "builtins.ConnectionError",
                at=T0 + timedelta(minutes=2))
    v1 = failed("ValueError: 10.0.0.7 answered 503", "builtins.ValueError",
                at=T0 + timedelta(minutes=9))
    make(JobStatus.COMPLETED)
    make(JobStatus.PENDING, last_error="ConnectionError: 1 answered 2")  # retrying: not failed
    groups = failure_groups()
    assert [g.count for g in groups] == [3, 1]
    big, small = groups
    assert isinstance(big, FailureGroup)
    assert (big.exception, big.message) == ("builtins.ConnectionError", "<n> answered <n>")
    assert big.fingerprint == fingerprint("builtins.ConnectionError", "<n> answered <n>")
    assert (big.first_seen, big.last_seen) == (c1.completed_at, c2.completed_at)
    assert big.types == ["t.a", "t.b"]
    assert big.example_job_id == c2.id
    assert (small.exception, small.example_job_id) == ("builtins.ValueError", v1.id)
    # Filters.
    assert [g.count for g in failure_groups(type="t.a")] == [2, 1]
    assert [g.count for g in failure_groups(queue="bees")] == [1]
    since = failure_groups(since=T0 + timedelta(minutes=1))
    assert [(g.exception, g.count) for g in since] == [("builtins.ConnectionError", 2),
                                                       ("builtins.ValueError", 1)]
    assert since[0].first_seen == c3.completed_at
    with pytest.raises(ValueError, match="since must be a datetime or None"):
        failure_groups(since="yesterday")


def test_retry_all_failed_retries_the_failed_jobs_that_match() -> None:
    conn = [failed(f"ConnectionError: host {i} down", "builtins.ConnectionError")
            for i in range(3)]
    value = failed("ValueError: no", "builtins.ValueError")
    other = failed("ConnectionError: host 9 down", "builtins.ConnectionError", type_="t.b")
    cancelled = make(JobStatus.CANCELLED)
    group = next(g for g in failure_groups(type="t.a")
                 if g.exception == "builtins.ConnectionError").fingerprint
    assert retry_all_failed(type="t.a", error_group=group) == 3
    status = dict(Job.objects.values_list("id", "status"))
    assert {status[j.id] for j in conn} == {JobStatus.PENDING}
    assert (status[value.id], status[other.id], status[cancelled.id]) == (
        JobStatus.FAILED, JobStatus.FAILED, JobStatus.CANCELLED)
    assert Job.objects.get(id=conn[0].id).attempts == 0
    assert retry_all_failed() == 2  # the rest of the failed ones, any group
    assert retry_all_failed() == 0


@pytest.mark.parametrize("group", ["ABC", "0123456789abcdef", 12, "zzzzzzzzzzzz"])
def test_retry_all_failed_refuses_what_is_not_a_fingerprint(group: Any) -> None:
    failed("ValueError: no", "builtins.ValueError")
    with pytest.raises(ValueError, match="error_group must be a group's fingerprint"):
        retry_all_failed(error_group=group)
    assert Job.objects.get().status == JobStatus.FAILED
