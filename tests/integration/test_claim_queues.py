"""A claim over several queues: the best jobs across them, in order, each once; and a plan
that reads only the head of each queue's index, not every due job of those queues."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from django_edgejobs import enqueue_many
from django_edgejobs.store import get_store

pytestmark = pytest.mark.django_db


def test_a_claim_over_several_queues_takes_the_best_across_them_each_once(register):
    register("t.noop", lambda p, c: None)
    now = timezone.now()
    items = [{"type": "t.noop", "queue": q, "priority": p, "payload": {"n": f"{q}{p}{i}"},
              "run_at": now - timedelta(seconds=60 - i)}
             for q, p in (("a", 0), ("b", 5), ("c", 1), ("a", 5)) for i in range(3)]
    enqueue_many(items)
    store = get_store()
    order: list[tuple[int, object]] = []
    seen: list[str] = []
    # "a" twice, as a careless caller might pass it: no job twice.
    while batch := store.claim("w", ["a", "b", "c", "a"], 4):
        order += [(-j.priority, j.run_at) for j in batch]
        seen += [j.payload["n"] for j in batch]
    assert sorted(seen) == sorted(i["payload"]["n"] for i in items)
    assert len(seen) == len(set(seen)) == 12
    assert order == sorted(order)  # best priority first, then oldest, across the queues


def _capture_claim_sql(queues: list[str], limit: int) -> tuple[str, list[object]]:
    captured: list[tuple[str, list[object]]] = []

    def spy(execute, sql, params, many, context):
        captured.append((sql, list(params or [])))
        return execute(sql, params, many, context)

    with transaction.atomic():
        with connection.execute_wrapper(spy):
            get_store().claim("w", queues, limit)
        transaction.set_rollback(True)
    return next((s, p) for s, p in captured if "UPDATE" in s)


def _index_rows_read(plan: dict) -> int:
    """Rows the plan's scans of the job table produced, over all their loops."""
    total = 0
    if plan.get("Relation Name") == "django_edgejobs_job" and "Scan" in plan["Node Type"]:
        total += plan["Actual Rows"] * plan["Actual Loops"]
    return total + sum(_index_rows_read(child) for child in plan.get("Plans", []))


@pytest.mark.parametrize("queues", [["a", "b"], ["a"]])
@pytest.mark.parametrize("loaded", ["a", "ab"])
def test_the_claim_reads_only_the_head_of_each_queue(register, queues, loaded):
    """``loaded``: the queues holding the 4,000 due jobs. All in one queue, with the same
    priority and time (one enqueue_many), is what made SQLite's planner go wrong."""
    register("t.noop", lambda p, c: None)
    per_queue = 4000 // len(loaded)
    enqueue_many([{"type": "t.noop", "queue": q} for q in loaded for _ in range(per_queue)])
    sql, params = _capture_claim_sql(queues, 5)
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("ANALYZE django_edgejobs_job")  # a planner that knows the table
            cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql.replace("%b", "%s"), params)
            plan = cursor.fetchone()[0]
            plan = json.loads(plan) if isinstance(plan, str) else plan
            # At most the head of each queue's index (5 each), never the 4,000 due jobs.
            assert _index_rows_read(plan[0]["Plan"]) <= len(queues) * 5 + 5, plan
        else:
            # With statistics (ANALYZE, or PRAGMA optimize) saying every job has the same
            # priority, SQLite once chose a skip-scan on run_at: every due job read and sorted.
            cursor.execute("ANALYZE")
            cursor.execute("EXPLAIN QUERY PLAN " + sql, params)
            details = [row[-1] for row in cursor.fetchall()]
            scans = [d for d in details if ("django_edgejobs_job" in d and "SEARCH" in d)
                     or d.startswith("SCAN django_edgejobs_job")]
            assert not any(d.startswith("SCAN django_edgejobs_job") for d in details), details
            # Each queue's head by the claim index, in its order: an equality on the queue
            # only, so no sort of that queue's due jobs (one sort, of the heads, at the end).
            heads = [d for d in scans if "edgejobs_job_claim_idx" in d]
            assert len(heads) == len(queues), details
            assert all(d.endswith("(queue=?)") for d in heads), details
            others = [d for d in scans if d not in heads]
            assert all("(id=?)" in d for d in others), details
            assert sum("TEMP B-TREE" in d for d in details) <= 1, details
        transaction.set_rollback(True)


def test_a_job_enqueued_due_now_is_claimed_at_once(register):
    """SQLite's clock has milliseconds and stored times microseconds: a job due now, claimed
    within the same millisecond, must not look not-yet-due (1 in 10 did, on SQLite)."""
    from django_edgejobs import enqueue

    register("t.noop", lambda p, c: None)
    store = get_store()
    missed = 0
    for _ in range(200):
        job = enqueue("t.noop", delay=0)
        if [j.id for j in store.claim("w", ["default"], 1)] != [job.id]:
            missed += 1
    assert missed == 0


def _explain_rows_read(sql: str, params: list[object]) -> tuple[int, str]:
    """Rows the plan's scans of the job table produced (PostgreSQL), or SQLite's plan text."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("ANALYZE django_edgejobs_job")
            cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql.replace("%b", "%s"), params)
            plan = cursor.fetchone()[0]
            plan = json.loads(plan) if isinstance(plan, str) else plan
            return _index_rows_read(plan[0]["Plan"]), json.dumps(plan)
        cursor.execute("ANALYZE")
        cursor.execute("EXPLAIN QUERY PLAN " + sql, params)
        return -1, "\n".join(str(row[-1]) for row in cursor.fetchall())


def test_neither_claim_walks_past_the_other_claims_jobs(register):
    """4,000 due jobs held back by a rate limit, ahead of the plain ones by priority: the
    plain claim reads the head of the plain jobs only, by its own partial index; and the
    limited claim's candidates come from the limited index, not from the plain jobs."""
    register("t.noop", lambda p, c: None)
    enqueue_many([{"type": "t.noop", "priority": 5, "rate_limit": "1/h", "rate_key": "r"}
                  for _ in range(4000)])
    enqueue_many([{"type": "t.noop"} for _ in range(4000)])
    with transaction.atomic():
        sql, params = _capture_claim_sql(["default"], 5)
        read, plan = _explain_rows_read(sql, params)
        if connection.vendor == "postgresql":
            assert read <= 10, plan
            assert "edgejobs_job_claim_idx" in plan, plan
        else:
            assert "edgejobs_job_claim_idx" in plan and "SCAN django_edgejobs_job" not in plan
        from django_edgejobs.models import Job
        from django_edgejobs.models.job import LIMITED

        candidates = (Job.objects.due().in_queues(["default"]).filter(LIMITED)
                      .order_by("-priority", "run_at")[:100])
        sql, params = candidates.query.sql_with_params()
        read, plan = _explain_rows_read(sql, list(params))
        if connection.vendor == "postgresql":
            assert read <= 200, plan
        assert "edgejobs_job_limited_claim_idx" in plan, plan
        transaction.set_rollback(True)
