"""The hot path costs statements per batch, not per job (claim and completion)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from django_edgejobs import enqueue_many
from django_edgejobs.runtime.worker import Worker

pytestmark = pytest.mark.django_db


def statements_for(n: int) -> list[str]:
    enqueue_many([{"type": "t.noop"} for _ in range(n)])
    worker = Worker(["default"], worker_id="counted", batch_size=100)
    worker.register()
    # Which queues hold jobs with a limit is read once per poll interval, not per batch.
    assert worker._limited_queues() == []
    with CaptureQueriesContext(connection) as captured:
        assert worker.run_once() == n
    # Transaction control (savepoints here, BEGIN/COMMIT outside a test) is not counted.
    return [q["sql"].split(" ", 1)[0] for q in captured.captured_queries
            if not q["sql"].startswith(("SAVEPOINT", "RELEASE SAVEPOINT"))]


def test_claiming_and_completing_a_batch_costs_the_same_for_5_or_50_jobs(register):
    register("t.noop", lambda p, c: None)
    few = statements_for(5)
    many = statements_for(50)
    assert few == many
    # PostgreSQL: claim (with its events) and completion (with its events): one each.
    # SQLite: the same, each with its events as a second statement.
    expected = 2 if connection.vendor == "postgresql" else 4
    assert len(many) == expected, many
