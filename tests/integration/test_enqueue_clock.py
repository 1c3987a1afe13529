"""``Job.created_at`` comes from the database's clock, like every other moment: a host whose
clock is off (here 30 s behind) stamps nothing with its own time (issue 15, item 7)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from django_edgejobs import enqueue, enqueue_many, get_job
from django_edgejobs.services import enqueue as enqueue_service
from django_edgejobs.store import get_store

pytestmark = pytest.mark.django_db(transaction=True)

SKEW = timedelta(seconds=30)


@pytest.fixture
def host_behind(monkeypatch):
    real = timezone.now
    monkeypatch.setattr(enqueue_service.timezone, "now", lambda: real() - SKEW)


@pytest.mark.parametrize("many", [False, True])
def test_created_at_is_the_databases_clock_not_a_skewed_hosts(register, host_behind, many):
    register("t.x", lambda p, c: None)
    store = get_store()
    before = store.db_now()
    if many:
        jobs = enqueue_many([{"type": "t.x", "payload": {"n": n}} for n in range(3)])
    else:
        jobs = [enqueue("t.x", {"n": 0})]
    after = store.db_now()
    for returned in jobs:
        stored = get_job(returned.id)
        assert before <= stored.created_at <= after, (before, stored.created_at, after)
        assert stored.updated_at == stored.created_at
        assert returned.created_at == stored.created_at  # the object enqueue returned, too
        assert stored.run_at == stored.created_at  # due at once: not 30 s early, not late


def test_a_delay_counts_from_the_databases_clock(register, host_behind):
    register("t.x", lambda p, c: None)
    job = get_job(enqueue("t.x", delay=60).id)
    assert job.run_at - job.created_at == timedelta(seconds=60)
