"""Acceptance: real ``runworker`` processes, real signals, the qa ledger as the oracle."""

from __future__ import annotations

import signal
import time

import pytest
from django.db.models import Count
from qa.models import Run

from django_edgejobs import enqueue, enqueue_many, get_job, get_job_events
from django_edgejobs.models import Job
from tests.conftest import wait_for

pytestmark = pytest.mark.acceptance

FAST = {"POLL_INTERVAL": 0.1, "HEARTBEAT_INTERVAL": 0.5, "WORKER_TIMEOUT": 3}


def test_three_workers_run_4500_jobs_exactly_once(workers, wait_exit):
    from django_edgejobs.models import Worker as WorkerRow

    # All three are up and idle before the first job exists, so they compete from the start.
    # No faults here: a normal WORKER_TIMEOUT, so a heartbeat that waits for SQLite's write
    # lock while the 4,500 jobs are inserted cannot get a live worker's jobs reclaimed.
    settings = {**FAST, "WORKER_TIMEOUT": 30, "HEARTBEAT_INTERVAL": 2}
    procs = [workers.start("--concurrency", "4", "--batch-size", "20", edgejobs=settings)
             for _ in range(3)]
    wait_for(lambda: WorkerRow.objects.filter(stopped_at__isnull=True).count() == 3,
             timeout=60, message="three workers registered")
    jobs = enqueue_many([{"type": "qa.record", "payload": {"n": n}} for n in range(4500)])
    wait_for(lambda: Job.objects.filter(status="completed").count() == 4500, timeout=300,
             message="4,500 jobs completed")
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        assert wait_exit(proc, timeout=60) == 0, workers.output(proc)
    assert Run.objects.count() == 4500
    per_job = Run.objects.values("job_id").annotate(n=Count("id")).filter(n__gt=1)
    assert list(per_job) == []
    assert set(Run.objects.values_list("job_id", flat=True)) == {j.id for j in jobs}
    assert Run.objects.values("pid").distinct().count() >= 2  # the work was shared
    assert not Job.objects.exclude(attempts=1).exists()


def test_kill_9_mid_job_is_reclaimed_and_completed_by_another_worker(workers):
    jobs = enqueue_many([{"type": "qa.sleep", "payload": {"seconds": 60, "retry_seconds": 0.1}}
                         for _ in range(4)])
    victim = workers.start("--concurrency", "4", edgejobs=FAST)
    wait_for(lambda: Run.objects.filter(phase="start", pid=victim.pid).count() == 4,
             timeout=30, message="the victim started all four jobs")
    rescuer = workers.start("--concurrency", "4", edgejobs=FAST)
    victim.send_signal(signal.SIGKILL)
    victim.wait(10)
    killed_at = time.monotonic()
    wait_for(lambda: Job.objects.filter(status="completed").count() == 4, timeout=30,
             message="all four jobs completed after the kill")
    recovered_in = time.monotonic() - killed_at
    # WORKER_TIMEOUT (3 s) + a supervisor pass (1 s) + a few seconds of slack.
    assert recovered_in < FAST["WORKER_TIMEOUT"] + 1 + 4, recovered_in
    for job in jobs:
        job = get_job(job.id)
        assert job.attempts == 2
        kinds = [e.type for e in get_job_events(job.id)]
        assert kinds == ["added", "processing", "reclaimed", "processing", "completed"]
    done = Run.objects.filter(phase="done")
    assert done.count() == 4 and set(done.values_list("pid", flat=True)) == {rescuer.pid}


def test_sigterm_drains_running_jobs_then_exits_zero(workers, wait_exit):
    jobs = enqueue_many([{"type": "qa.sleep", "payload": {"seconds": 1}} for _ in range(2)])
    proc = workers.start("--concurrency", "2", "--shutdown-timeout", "20", edgejobs=FAST)
    wait_for(lambda: Run.objects.filter(phase="start").count() == 2, timeout=30,
             message="both jobs started")
    later = enqueue("qa.record")
    proc.send_signal(signal.SIGTERM)
    assert wait_exit(proc, timeout=30) == 0, workers.output(proc)
    assert [get_job(j.id).status for j in jobs] == ["completed", "completed"]
    assert get_job(later.id).status == "pending"  # no claims after the signal
    assert "stopped" in workers.output(proc)


def test_sigterm_with_a_short_grace_gives_jobs_back_without_an_attempt(workers, wait_exit):
    job = enqueue("qa.sleep", {"seconds": 60})
    proc = workers.start("--concurrency", "1", "--shutdown-timeout", "0.5", edgejobs=FAST)
    wait_for(lambda: Run.objects.filter(phase="start").exists(), timeout=30,
             message="job started")
    proc.send_signal(signal.SIGTERM)
    assert wait_exit(proc, timeout=30) == 0, workers.output(proc)
    job = get_job(job.id)
    assert job.status == "pending" and job.attempts == 0
    assert [e.type for e in get_job_events(job.id)][-1] == "released"


def test_a_second_signal_exits_at_once(workers, wait_exit):
    enqueue("qa.sleep", {"seconds": 60})
    proc = workers.start("--concurrency", "1", "--shutdown-timeout", "60", edgejobs=FAST)
    wait_for(lambda: Run.objects.filter(phase="start").exists(), timeout=30,
             message="job started")
    proc.send_signal(signal.SIGTERM)
    wait_for(lambda: "stopping" in workers.output(proc), timeout=10, message="first signal")
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    assert wait_exit(proc, timeout=10) != 0
    assert time.monotonic() - sent < 3


def test_burst_exits_zero_when_nothing_is_due(workers, wait_exit):
    enqueue("qa.record", delay=3600)
    proc = workers.start("--burst", edgejobs=FAST)
    assert wait_exit(proc, timeout=60) == 0, workers.output(proc)
    assert Job.objects.get().status == "pending"


def test_edgejobs_worker_alias_and_bad_arguments(workers, wait_exit):
    proc = workers.start("--burst", "--queue", "emails", command="edgejobs_worker")
    assert wait_exit(proc, timeout=60) == 0
    bad = workers.start("--concurrency", "0")
    assert wait_exit(bad, timeout=60) != 0
    assert "--concurrency" in workers.output(bad)


def test_an_idle_sqlite_worker_wakes_when_another_process_enqueues(workers, wait_exit,
                                                                   vendor):
    """SQLite has no notifications: the worker watches ``PRAGMA data_version`` and claims
    when another connection committed, long before its POLL_INTERVAL (60 s here)."""
    from django_edgejobs.models import Worker as WorkerRow

    if vendor != "sqlite":
        pytest.skip("SQLite only (PostgreSQL's workers are woken by NOTIFY)")
    proc = workers.start("--concurrency", "1",
                         edgejobs={**FAST, "POLL_INTERVAL": 60, "SQLITE_WATCH_INTERVAL": 0.02})
    first = enqueue("qa.record")
    wait_for(lambda: get_job(first.id).status == "completed", timeout=30,
             message="the first job completed")
    # Two more heartbeats: the wake-up that followed the first job is long past, and the
    # worker waits for its next poll, a minute away.
    beat = WorkerRow.objects.get(pid=proc.pid).last_heartbeat
    wait_for(lambda: WorkerRow.objects.filter(pid=proc.pid, last_heartbeat__gt=beat).exists(),
             timeout=10, message="a heartbeat")
    beat = WorkerRow.objects.get(pid=proc.pid).last_heartbeat
    wait_for(lambda: WorkerRow.objects.filter(pid=proc.pid, last_heartbeat__gt=beat).exists(),
             timeout=10, message="another heartbeat")
    second = enqueue("qa.record")
    wait_for(lambda: get_job(second.id).status == "completed", timeout=20,
             message="the second job completed before the 60 s poll")
    proc.send_signal(signal.SIGTERM)
    assert wait_exit(proc, timeout=30) == 0, workers.output(proc)
