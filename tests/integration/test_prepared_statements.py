"""PostgreSQL: the hot path (enqueue, claim, completion) is prepared on the server unless
``PREPARED_STATEMENTS`` is off, and Django's own queries are never prepared by it."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import override_settings

from django_edgejobs import enqueue, enqueue_many
from django_edgejobs.models import Job
from django_edgejobs.runtime.worker import Worker

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL"),
]


def prepared() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [row[0] for row in cursor.fetchall()]


def fresh_connection() -> None:
    """A new session, so statements prepared by earlier tests do not count."""
    connection.close()
    connection.ensure_connection()


@pytest.mark.django_db(transaction=True)
def test_enqueue_claim_and_completion_are_prepared_and_django_queries_are_not(register):
    register("t.noop", lambda p, c: None)
    fresh_connection()
    for n in range(3):
        enqueue("t.noop", {"n": n})
        list(Job.objects.filter(type="t.noop"))  # a Django query, run again and again
    worker = Worker(["default"], worker_id="prep", batch_size=10)
    assert worker.run_once() == 3
    statements = prepared()
    assert any("INSERT INTO" in s and "unnest" in s for s in statements), statements
    assert any("FOR UPDATE SKIP LOCKED" in s for s in statements), statements
    assert any("'completed'" in s for s in statements), statements
    assert not any(s.lstrip().upper().startswith("SELECT") and "SKIP LOCKED" not in s
                   and "unnest" not in s for s in statements), statements
    assert Job.objects.filter(status="completed").count() == 3


@pytest.mark.django_db(transaction=True)
@override_settings(EDGEJOBS={"PREPARED_STATEMENTS": False})
def test_nothing_is_prepared_when_the_setting_is_off(register):
    register("t.noop", lambda p, c: None)
    fresh_connection()
    enqueue_many([{"type": "t.noop"} for _ in range(5)])
    enqueue("t.noop")
    assert Worker(["default"], worker_id="unprep", batch_size=10).run_once() == 6
    assert prepared() == []
    assert Job.objects.filter(status="completed").count() == 6


def test_execute_wrappers_see_the_hot_path_statements(register):
    register("t.noop", lambda p, c: None)
    seen: list[str] = []

    def spy(execute, sql, params, many, context):
        seen.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(spy):
        enqueue("t.noop")
        assert Worker(["default"], worker_id="spied", batch_size=10).run_once() == 1
    assert any("unnest" in s and "INSERT INTO" in s for s in seen), seen
    assert any("SKIP LOCKED" in s for s in seen), seen
    assert any("'completed'" in s for s in seen), seen
