"""The dependency part of the store contract, against every store of this run's database (the
portable ORM ``Store`` and the vendor's): an attempt's outcome written by ``finish``, by the
vendor's bulk completion or row by row, settles the jobs waiting for it, the same way; an
outcome refused (a lost lease) settles nothing; and jobs without dependents cost no settle."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from django_edgejobs.models import Job, JobDependency, JobEvent
from django_edgejobs.models.job import DEPENDENCIES
from django_edgejobs.store.base import Store

from .contract import ALIAS, STALE, build_job, outcome, store_classes

pytestmark = pytest.mark.django_db

CLASSES = store_classes()


@pytest.fixture(params=CLASSES, ids=[c.__name__ for c in CLASSES])
def store(request: pytest.FixtureRequest, db: None) -> Iterator[Store]:
    yield request.param(ALIAS)


def waiting_for(*jobs: Job, on_failure: str = "cancel") -> Job:
    dependent = build_job("waiting_due", wait_token=DEPENDENCIES, steps={})
    JobDependency.objects.bulk_create(
        [JobDependency(job=dependent, depends_on=j, on_failure=on_failure) for j in jobs])
    return dependent


def state(job: Job) -> tuple[str, str, list[str]]:
    row = Job.objects.get(id=job.id)
    return (row.status, row.wait_token,
            list(JobEvent.objects.filter(job_id=job.id).values_list("type", flat=True)))


@pytest.mark.parametrize("events", [[], [("prolonged", {"seconds": 5})]],
                         ids=["bulk", "rows"])
def test_a_completion_makes_the_dependent_due_once_all_are_done(
        store: Store, events: list[tuple[str, dict[str, Any]]]) -> None:
    """A plain completion takes the vendor's bulk path; one with events goes row by row."""
    a, b = build_job("processing"), build_job("processing")
    dependent = waiting_for(a, b)
    assert store.finish([outcome("completed", a, events=events)]) == {a.id}
    assert state(dependent) == ("waiting", DEPENDENCIES, [])
    assert store.finish([outcome("completed", b, events=events)]) == {b.id}
    assert state(dependent) == ("pending", "", ["resumed"])
    assert not JobDependency.objects.filter(resolved=False).exists()


@pytest.mark.parametrize(("on_failure", "expected"), [("cancel", "cancelled"),
                                                      ("run", "pending")])
def test_a_failure_for_good_cancels_or_runs_the_dependent(
        store: Store, on_failure: str, expected: str) -> None:
    a = build_job("processing")
    dependent = waiting_for(a, on_failure=on_failure)
    below = waiting_for(dependent)
    assert store.finish([outcome("failed", a)]) == {a.id}
    assert state(dependent)[0] == expected
    assert state(below)[0] == ("cancelled" if expected == "cancelled" else "waiting")


def test_a_retry_or_a_wait_settles_nothing(store: Store) -> None:
    a, b = build_job("processing"), build_job("processing")
    dependent = waiting_for(a, b)
    assert store.finish([outcome("retry", a), outcome("waiting", b)]) == {a.id, b.id}
    assert state(dependent) == ("waiting", DEPENDENCIES, [])
    assert JobDependency.objects.filter(resolved=False).count() == 2


def test_an_outcome_refused_for_its_lease_settles_nothing(store: Store) -> None:
    a = build_job("processing")
    dependent = waiting_for(a)
    assert store.finish([outcome("completed", a, lease=STALE)]) == set()
    assert state(dependent) == ("waiting", DEPENDENCIES, [])


def test_jobs_without_dependents_cost_no_settle(store: Store,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    settles: list[Any] = []
    monkeypatch.setattr(store, "settle", lambda ids, **kw: settles.append(ids))
    jobs = [build_job("processing") for _ in range(3)]
    assert store.finish([outcome("completed", j) for j in jobs]) == {j.id for j in jobs}
    assert settles == []
