"""Durable execution through real runworker processes."""

from __future__ import annotations

import signal

import pytest
from qa.models import Run

from django_edgejobs import enqueue, get_job, get_job_events
from tests.conftest import wait_for

pytestmark = pytest.mark.acceptance

FAST = {"POLL_INTERVAL": 0.1, "HEARTBEAT_INTERVAL": 0.5, "WORKER_TIMEOUT": 3,
        "SUPERVISOR_INTERVAL": 0.5}


def phases(job) -> list[str]:
    return list(Run.objects.filter(job_id=job.id).order_by("id").values_list("phase", flat=True))


def test_a_step_runs_once_across_a_kill_9_after_it(workers):
    job = enqueue("qa.steps", {"pause": 60})
    victim = workers.start("--concurrency", "1", edgejobs=FAST)
    wait_for(lambda: "paused" in phases(job), timeout=30, message="step one done, paused")
    victim.send_signal(signal.SIGKILL)
    victim.wait(10)
    workers.start("--concurrency", "1", edgejobs=FAST)
    wait_for(lambda: get_job(job.id).status == "completed", timeout=30,
             message="reclaimed and completed")
    assert phases(job) == ["one", "paused", "two"]  # step one did not run again
    assert get_job(job.id).attempts == 2


def test_a_time_wait_resumes_through_the_supervisor_without_an_attempt(workers):
    job = enqueue("qa.steps", {"wait": 2}, max_attempts=1)
    workers.start("--concurrency", "2", edgejobs=FAST)
    wait_for(lambda: get_job(job.id).status == "completed", timeout=30,
             message="waited and completed")
    assert phases(job) == ["one", "two"]
    kinds = [e.type for e in get_job_events(job.id)]
    assert kinds == ["added", "processing", "waiting", "resumed", "processing", "completed"]


def test_force_kill_child_leaves_with_its_worker_and_ignores_group_signals(workers):
    import os

    from tests.acceptance.conftest import alive, children

    job = enqueue("qa.spin", {"mode": "spin"}, timeout=120)
    proc = workers.start("--concurrency", "1", "--shutdown-timeout", "1", edgejobs=FAST,
                         new_session=True)
    wait_for(lambda: get_job(job.id).status == "processing", timeout=30, message="claimed")
    child = wait_for(lambda: children(proc.pid), timeout=30, message="child process")[0]
    # A signal to the whole group (Ctrl-C, systemd): the worker gets its grace period, the
    # child is not killed by it; after the grace the job is released, not failed.
    os.killpg(proc.pid, signal.SIGTERM)
    assert proc.wait(30) == 0, workers.output(proc)
    job = get_job(job.id)
    assert job.status == "pending" and job.attempts == 0, job.last_error
    wait_for(lambda: not alive(child), timeout=10, message="child killed by its worker")

    # kill -9 of the worker: the child notices and leaves (no orphan spinning forever).
    proc = workers.start("--concurrency", "1", edgejobs=FAST)
    child = wait_for(lambda: children(proc.pid), timeout=30, message="child process")[0]
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    wait_for(lambda: not alive(child), timeout=10, message="orphaned child exited")
