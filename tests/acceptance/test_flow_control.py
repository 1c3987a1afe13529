"""Acceptance: flow control under real ``runworker`` processes, the qa ledger and the
database's clock as the oracles.

- Pausing a queue (4 workers on PostgreSQL, 3 on SQLite, 4 threads each): no job of the paused
  queue is claimed after ``pause_queue`` returned, the other queues keep running, jobs still
  enqueue, and after ``resume_queue`` every job runs exactly once.
- Concurrency limits: handlers record their start and end on the database's clock (``Span``);
  no more than the limit of one key ever overlap, with one thread per worker so that any
  overlap is between workers. Rate limits: in any window of the period, no more than the rate
  of attempts claimed (each attempt's ``processing`` event, written by the claim). A worker
  killed with slots held gives them back when its jobs are reclaimed.
- Type-filtered workers (``--type``, ``--exclude-type``): each job runs on a worker that may
  take its type, and only there."""

from __future__ import annotations

import signal

import pytest
from django.db import connection
from django.db.models import Count
from qa.models import Run, Span

from django_edgejobs import enqueue_many, list_queues, pause_queue, resume_queue
from django_edgejobs.models import Job, JobEvent
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
    last_claim = max(_claims(slow_ids), default=None)
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


def _claims(ids: list) -> list:
    """When each attempt of these jobs was claimed, on the store's clock: the ``processing``
    events the claim writes (``started_at`` is the claim only until the attempt's outcome
    is written; then it is when the handler began)."""
    return sorted(JobEvent.objects.filter(job_id__in=ids, type="processing")
                  .values_list("created_at", flat=True))


def _max_overlap(key: str) -> int:
    """The most handlers of the key that ran at one moment, from their ``Span`` rows (start
    and end on the database's clock; an end before a start at the same moment)."""
    edges = []
    for span in Span.objects.filter(key=key):
        edges += [(span.started, 1), (span.ended, 0)]
    running = peak = 0
    for _, start in sorted(edges):
        running += 1 if start else -1
        peak = max(peak, running)
    return peak


def test_no_more_than_the_limit_of_one_key_run_at_once_across_workers(workers, wait_exit):
    # One thread and one claimed job per worker: every overlap is between workers, so the
    # peaks below prove the limit held across them (with 4 threads, one worker alone could
    # reach them, and did: a plain drain then ran on one worker only).
    count = 4 if connection.vendor == "postgresql" else 3
    procs = [workers.start("--concurrency", "1", "--batch-size", "1", edgejobs=FAST)
             for _ in range(count)]
    wait_for(lambda: WorkerRow.objects.filter(stopped_at__isnull=True).count() == count,
             timeout=60, message=f"{count} workers registered")
    items = [{"type": "qa.span", "payload": {"seconds": 0.05, "acct": acct,
                                             "key": f"acct:{acct}"},
              "concurrency_key": "acct:{acct}", "concurrency_limit": limit}
             for acct, limit in ((1, 2), (2, 3)) for _ in range(60)]
    items += [{"type": "qa.record", "payload": {"n": n}} for n in range(100)]
    jobs = enqueue_many(items)
    assert {j.concurrency_key for j in jobs} == {"acct:1", "acct:2", ""}
    ids = [j.id for j in jobs]
    wait_for(lambda: Job.objects.filter(id__in=ids, status="completed").count() == len(ids),
             timeout=180, message="every job ran")
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        assert wait_exit(proc, timeout=60) == 0, workers.output(proc)
    # Every job ran once: a Span per keyed job, a Run per plain one, all at attempt 1.
    spans = Span.objects.filter(job_id__in=ids)
    assert spans.count() == 120 and spans.values("job_id").distinct().count() == 120
    runs = Run.objects.filter(job_id__in=ids)
    assert runs.count() == 100 and runs.values("job_id").distinct().count() == 100
    assert not Job.objects.filter(id__in=ids).exclude(attempts=1).exists()
    for key, limit in (("acct:1", 2), ("acct:2", 3)):
        peak = _max_overlap(key)
        assert 2 <= peak <= limit, (key, peak)


def test_a_rate_limit_holds_in_every_window_across_workers(workers, wait_exit):
    count = 4 if connection.vendor == "postgresql" else 3
    procs = [workers.start("--concurrency", "4", edgejobs=FAST) for _ in range(count)]
    wait_for(lambda: WorkerRow.objects.filter(stopped_at__isnull=True).count() == count,
             timeout=60, message=f"{count} workers registered")
    jobs = enqueue_many([{"type": "qa.record", "payload": {"n": n}, "rate_limit": "20/s"}
                         for n in range(120)])
    ids = [j.id for j in jobs]
    wait_for(lambda: Job.objects.filter(id__in=ids, status="completed").count() == 120,
             timeout=120, message="every job ran")
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        assert wait_exit(proc, timeout=60) == 0, workers.output(proc)
    # Each ran once, at its first attempt. In any one-second window, at most 20 claimed.
    assert not Job.objects.filter(id__in=ids).exclude(attempts=1).exists()
    started = _claims(ids)
    assert len(started) == 120
    gaps = [(started[i + 20] - started[i]).total_seconds() for i in range(len(started) - 20)]
    assert min(gaps) >= 1.0 - 1e-6, min(gaps)
    assert (started[-1] - started[0]).total_seconds() >= 5.0
    assert Run.objects.filter(job_id__in=ids).count() == 120


def test_the_slots_of_a_killed_worker_come_back_when_its_jobs_are_reclaimed(workers):
    fast = {**FAST, "WORKER_TIMEOUT": 3, "HEARTBEAT_INTERVAL": 0.5}
    # Two long jobs the victim takes (the limit), and a short one, last by priority, that
    # must wait for a slot.
    jobs = enqueue_many([{"type": "qa.sleep", "payload": payload, "priority": priority,
                          "concurrency_key": "k", "concurrency_limit": 2}
                         for payload, priority in (({"seconds": 60, "retry_seconds": 0.1}, 0),
                                                   ({"seconds": 60, "retry_seconds": 0.1}, 0),
                                                   ({"seconds": 0.1}, -1))])
    victim = workers.start("--concurrency", "4", edgejobs=fast)
    wait_for(lambda: Run.objects.filter(phase="start", pid=victim.pid).count() == 2,
             timeout=30, message="the victim started two jobs, the limit")
    assert Job.objects.filter(status="pending").count() == 1  # over the limit: no attempt
    victim.send_signal(signal.SIGKILL)
    victim.wait(10)
    rescuer = workers.start("--concurrency", "4", edgejobs=fast)
    wait_for(lambda: Job.objects.filter(status="completed").count() == 3, timeout=60,
             message="all three jobs completed after the kill")
    attempts = sorted(Job.objects.filter(id__in=[j.id for j in jobs])
                      .values_list("attempts", flat=True))
    assert attempts == [1, 2, 2]
    assert set(Run.objects.filter(phase="done").values_list("pid", flat=True)) == {rescuer.pid}
