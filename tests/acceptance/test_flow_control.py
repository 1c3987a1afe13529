"""Acceptance: flow control under real ``runworker`` processes, the qa ledger and the
database's clock as the oracles.

- Pausing a queue (4 workers on PostgreSQL, 3 on SQLite, 4 threads each): no job of the paused
  queue is claimed after ``pause_queue`` returned, the other queues keep running, jobs still
  enqueue, and after ``resume_queue`` every job runs exactly once.
- Type-filtered workers (``--type``, ``--exclude-type``): each job runs on a worker that may
  take its type, and only there."""

from __future__ import annotations

import signal

import pytest
from django.db import connection
from django.db.models import Count, Max
from qa.models import Run

from django_edgejobs import enqueue_many, list_queues, pause_queue, resume_queue
from django_edgejobs.models import Job
from django_edgejobs.models import Worker as WorkerRow
from django_edgejobs.store import get_store
from tests.conftest import wait_for

pytestmark = pytest.mark.acceptance

FAST = {"POLL_INTERVAL": 0.2, "HEARTBEAT_INTERVAL": 1, "WORKER_TIMEOUT": 30}


def test_a_paused_queue_starts_nothing_across_workers_until_resumed(workers, wait_exit):
    count = 4 if connection.vendor == "postgresql" else 3
    procs = [workers.start("--concurrency", "4", "--queue", "default", "--queue", "slow",
                           edgejobs=FAST) for _ in range(count)]
    wait_for(lambda: WorkerRow.objects.filter(stopped_at__isnull=True).count() == count,
             timeout=60, message=f"{count} workers registered")
    slow = enqueue_many([{"type": "qa.sleep", "queue": "slow", "payload": {"seconds": 0.05}}
                         for _ in range(1500)])
    wait_for(lambda: Run.objects.filter(phase="start").count() >= 100, timeout=60,
             message="the slow queue is being worked")

    assert pause_queue("slow") is True
    paused_at = get_store().db_now()  # after the call returned
    assert pause_queue("slow") is False  # already paused

    # Jobs still enqueue into the paused queue; other queues keep running on every worker.
    later = enqueue_many([{"type": "qa.sleep", "queue": "slow", "payload": {"seconds": 0}}
                          for _ in range(20)])
    markers = enqueue_many([{"type": "qa.record", "payload": {"n": n}} for n in range(200)])
    marker_ids = [j.id for j in markers]
    wait_for(lambda: Job.objects.filter(id__in=marker_ids, status="completed").count() == 200,
             timeout=120, message="the default queue ran while slow was paused")
    # What was claimed before the pause finishes; nothing of "slow" is processing after.
    wait_for(lambda: not Job.objects.filter(queue="slow", status="processing").exists(),
             timeout=120, message="the slow jobs claimed before the pause finished")

    slow_ids = [j.id for j in slow] + [j.id for j in later]
    rows = Job.objects.filter(id__in=slow_ids)
    last_claim = rows.aggregate(m=Max("started_at"))["m"]
    assert last_claim is not None and last_claim <= paused_at
    held = rows.filter(status="pending")
    assert held.count() >= 20 and not held.exclude(attempts=0).exists()
    (info,) = [q for q in list_queues() if q.name == "slow"]
    assert info.paused and info.pending == held.count() and info.processing == 0

    assert resume_queue("slow") is True
    wait_for(lambda: rows.filter(status="completed").count() == len(slow_ids), timeout=180,
             message="every slow job ran after the resume")
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        assert wait_exit(proc, timeout=60) == 0, workers.output(proc)
    starts = Run.objects.filter(job_id__in=slow_ids, phase="start")
    assert starts.count() == len(slow_ids)
    assert not starts.values("job_id").annotate(n=Count("id")).filter(n__gt=1).exists()
    assert Run.objects.filter(job_id__in=slow_ids, phase="start")\
        .values("pid").distinct().count() >= 2  # the work was shared


def test_type_filtered_workers_take_only_their_types(workers, wait_exit):
    records = workers.start("--concurrency", "4", "--type", "qa.record", edgejobs=FAST)
    others = workers.start("--concurrency", "4", "--exclude-type", "qa.record", edgejobs=FAST)
    wait_for(lambda: WorkerRow.objects.filter(stopped_at__isnull=True).count() == 2,
             timeout=60, message="two workers registered")
    jobs = enqueue_many([{"type": "qa.record", "payload": {"n": n}} for n in range(150)]
                        + [{"type": "qa.sleep", "payload": {"seconds": 0}} for _ in range(150)])
    ids = [j.id for j in jobs]
    wait_for(lambda: Job.objects.filter(id__in=ids, status="completed").count() == 300,
             timeout=120, message="every job ran")
    for proc in (records, others):
        proc.send_signal(signal.SIGTERM)
    for proc in (records, others):
        assert wait_exit(proc, timeout=60) == 0, workers.output(proc)
    by_type = {t: set(Run.objects.filter(job_id__in=[j.id for j in jobs if j.type == t])
                      .values_list("pid", flat=True))
               for t in ("qa.record", "qa.sleep")}
    assert by_type == {"qa.record": {records.pid}, "qa.sleep": {others.pid}}
    assert "types=qa.record" in workers.output(records)
