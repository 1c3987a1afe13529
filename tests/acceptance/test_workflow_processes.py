"""Acceptance: workflows under real ``runworker`` processes, the qa ledger (``Run``, ``Span``)
and the database's clock as the oracles.

- A 3-level DAG of 1,000 jobs with fan-in (100 roots; 800 jobs each after 2 roots; 100 jobs
  each after 8 of those), enqueued in one ``enqueue_many``: every job runs once, and each
  starts after every one of its dependencies ended (database clock); each sees all its
  dependencies' results.
- Failure propagation: a job failing for good cancels its dependents all the way down, and
  the ones that chose ``on_dependency_failure="run"`` run, with None for its result.
- Batch callbacks under 4 racing worker processes: 20 batches of 40 jobs, each with an
  ``on_complete`` and an ``on_success`` callback: every callback runs exactly once (one run
  in the ledger, one ``resumed`` event), with the batch's counts."""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest
from django.db import connection
from qa.models import Run, Span

from django_edgejobs import enqueue_batch, enqueue_many, get_batch
from django_edgejobs.models import Job, JobDependency, JobEvent
from django_edgejobs.models import Worker as WorkerRow
from tests.conftest import wait_for

pytestmark = pytest.mark.acceptance

FAST = {"POLL_INTERVAL": 0.2, "HEARTBEAT_INTERVAL": 1, "WORKER_TIMEOUT": 30}


def start(workers, count: int) -> None:
    for _ in range(count):
        workers.start("--concurrency", "4", edgejobs=FAST)
    wait_for(lambda: WorkerRow.objects.filter(stopped_at__isnull=True).count() == count,
             timeout=60, message=f"{count} workers registered")


def finished(ids: list) -> bool:
    return not Job.objects.filter(id__in=ids, status__in=("pending", "waiting",
                                                          "processing")).exists()


def test_a_dag_of_1000_jobs_runs_each_once_in_dependency_order(workers):
    items = []
    for r in range(100):
        items.append({"type": "qa.dag", "payload": {"name": f"root{r}"}})
    for m in range(800):
        items.append({"type": "qa.dag", "payload": {"name": f"mid{m}", "n_deps": 2},
                      "depends_on": [m % 100, (m * 7 + 3) % 100]})
    for f in range(100):
        deps = sorted({100 + (f * 8 + k * 97) % 800 for k in range(8)})
        items.append({"type": "qa.dag", "payload": {"name": f"final{f}",
                                                    "n_deps": len(deps)},
                      "depends_on": deps})
    jobs = enqueue_many(items)
    ids = [j.id for j in jobs]
    assert Job.objects.filter(id__in=ids, status="waiting").count() == 900
    start(workers, 3 if connection.vendor == "postgresql" else 2)
    wait_for(lambda: finished(ids), timeout=240, interval=0.5, message="the DAG finished")

    statuses = Counter(Job.objects.filter(id__in=ids).values_list("status", flat=True))
    assert statuses == {"completed": 1000}, statuses
    runs = Counter(Run.objects.filter(job_id__in=ids).values_list("job_id", flat=True))
    assert len(runs) == 1000 and set(runs.values()) == {1}  # each job ran once
    span = {s.job_id: s for s in Span.objects.filter(job_id__in=ids)}
    edges = list(JobDependency.objects.filter(job_id__in=ids)
                 .values_list("job_id", "depends_on_id"))
    assert len(edges) == 800 * 2 + sum(len(i["depends_on"]) for i in items[900:])
    late = [(d, u) for d, u in edges if span[d].started < span[u].ended]
    assert late == []  # no job started before every one of its dependencies had ended
    resumed = Counter(JobEvent.objects.filter(job_id__in=ids, type="resumed")
                      .values_list("job_id", flat=True))
    assert len(resumed) == 900 and set(resumed.values()) == {1}


def test_a_failure_cancels_down_the_graph_and_run_anyway_runs(workers):
    items = [{"type": "qa.dag", "payload": {"name": "bad", "fail": True}}]
    for i in range(30):  # cancelled, and their children too
        items.append({"type": "qa.dag", "payload": {"name": f"c{i}", "n_deps": 1},
                      "depends_on": [0]})
        items.append({"type": "qa.dag", "payload": {"name": f"cc{i}", "n_deps": 1},
                      "depends_on": [len(items) - 1]})
    for i in range(30):  # run anyway, and their children run after them
        items.append({"type": "qa.dag", "depends_on": [0], "on_dependency_failure": "run",
                      "payload": {"name": f"r{i}", "n_deps": 1, "any_result": True}})
        items.append({"type": "qa.dag", "payload": {"name": f"rc{i}", "n_deps": 1},
                      "depends_on": [len(items) - 1]})
    jobs = enqueue_many(items)
    ids = [j.id for j in jobs]
    start(workers, 2)
    wait_for(lambda: finished(ids), timeout=120, interval=0.3, message="the graph finished")
    got = dict(Job.objects.filter(id__in=ids).values_list("id", "status"))
    assert got[ids[0]] == "failed"
    assert [got[i] for i in ids[1:61]] == ["cancelled"] * 60
    assert [got[i] for i in ids[61:]] == ["completed"] * 60
    ran = set(Run.objects.filter(job_id__in=ids).values_list("job_id", flat=True))
    assert ran == {ids[0], *ids[61:]}  # nothing cancelled ever ran


def test_batch_callbacks_run_exactly_once_under_racing_workers(workers):
    batches = [enqueue_batch(
        [{"type": "qa.noop"} for _ in range(40)],
        on_complete={"type": "qa.record", "payload": {"batch": n}},
        on_success=("qa.record", {"all": n}), description=f"b{n}") for n in range(20)]
    callbacks = [i for b in batches for i in (b.on_complete_job, b.on_success_job)]
    assert Job.objects.filter(id__in=callbacks, status="waiting").count() == 40
    start(workers, 4)
    wait_for(lambda: all(get_batch(b.id).status == "finished" for b in batches)
             and finished(callbacks), timeout=180, interval=0.3,
             message="every batch and its callbacks finished")
    runs = Counter(Run.objects.filter(job_id__in=callbacks).values_list("job_id", flat=True))
    assert runs == dict.fromkeys(callbacks, 1)
    events = defaultdict(list)
    for job_id, kind in JobEvent.objects.filter(job_id__in=callbacks).values_list(
            "job_id", "type").order_by("id"):
        events[job_id].append(kind)
    assert set(map(tuple, events.values())) == {
        ("added", "resumed", "processing", "completed")}
    for b in batches:
        payload = Job.objects.get(id=b.on_complete_job).payload
        assert payload["batch"] == {"id": str(b.id), "total": 40, "pending": 0,
                                    "completed": 40, "failed": 0, "cancelled": 0}
