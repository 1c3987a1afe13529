"""The runtime as small services: each maintenance service's ``run_once()``, the thin
``ServiceLoop`` around them, and the ``Process`` that starts the worker and the services
beside it and stops them. Tests wait on the loops' pass counts, not on sleeps."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from django_edgejobs import enqueue, get_job
from django_edgejobs.models import Job, WaitToken
from django_edgejobs.models import Worker as WorkerRow
from django_edgejobs.models.clock import Now
from django_edgejobs.runtime.maintenance import (
    JobExpirer,
    Pruner,
    Rescuer,
    Resumer,
    TokenExpirer,
)
from django_edgejobs.runtime.process import Process
from django_edgejobs.runtime.service import FunctionService, Service, ServiceLoop
from django_edgejobs.runtime.supervisor import Supervisor
from django_edgejobs.runtime.worker import Worker
from django_edgejobs.store import get_store
from django_edgejobs.testing import run_jobs
from tests.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def edgejobs_threads() -> set[str]:
    return {t.name for t in threading.enumerate() if t.name.startswith("edgejobs-")}


# -- each maintenance service, one pass ---------------------------------------------------


def test_the_rescuer_gives_back_the_job_of_a_silent_worker(register):
    register("t.x", lambda p, c: None)
    job = enqueue("t.x")
    Worker(["default"], worker_id="silent").register()
    get_store().claim("silent", ["default"], 1)
    assert Rescuer().run_once() == 0  # its heartbeat is fresh
    WorkerRow.objects.filter(id="silent").update(
        last_heartbeat=timezone.now() - timedelta(minutes=5))
    assert Rescuer().run_once() == 1
    row = get_job(job.id)
    assert (row.status, row.lease_owner, row.attempts) == ("pending", "", 1)


def test_the_resumer_resumes_a_wait_that_is_over(register):
    def flow(payload: Any, ctx: Any) -> str:
        ctx.wait_for(hours=1)
        return "resumed"

    register("t.flow", flow)
    job = enqueue("t.flow")
    run_jobs()
    assert get_job(job.id).status == "waiting"
    assert Resumer().run_once() == 0  # not due yet
    steps = get_job(job.id).steps
    past = (timezone.now() - timedelta(seconds=1)).isoformat()
    steps.update({k: past for k in steps if k.startswith("edgejobs:wait:")})
    Job.objects.filter(id=job.id).update(run_at=Now() - timedelta(seconds=1), steps=steps)
    assert Resumer().run_once() == 1
    assert get_job(job.id).status == "pending"


def test_the_job_expirer_cancels_what_expired_before_it_ran(register):
    register("t.x", lambda p, c: None)
    job = enqueue("t.x", expires=3600)
    assert JobExpirer().run_once() == 0
    Job.objects.filter(id=job.id).update(expires_at=Now() - timedelta(seconds=1))
    assert JobExpirer().run_once() == 1
    assert get_job(job.id).status == "cancelled"


def test_the_token_expirer_ends_a_token_past_its_timeout(register):
    def approval(payload: Any, ctx: Any) -> Any:
        token = ctx.create_token(timeout=3600)
        return ctx.wait_for_token(token.id).ok

    register("t.approval", approval)
    job = enqueue("t.approval")
    run_jobs()
    assert TokenExpirer().run_once() == 0
    WaitToken.objects.update(timeout_at=Now() - timedelta(seconds=1))
    assert TokenExpirer().run_once() == 1
    run_jobs()
    row = get_job(job.id)
    assert (row.status, row.result) == ("completed", False)


def test_the_pruner_deletes_old_history(register, settings):
    register("t.x", lambda p, c: None)
    job = enqueue("t.x")
    run_jobs()
    assert Pruner().run_once()["jobs_pruned"] == 0
    Job.objects.filter(id=job.id).update(completed_at=Now() - timedelta(days=30))
    settings.EDGEJOBS = {**settings.EDGEJOBS, "KEEP_FINISHED_DAYS": 7}
    assert Pruner().run_once()["jobs_pruned"] == 1
    assert not Job.objects.filter(id=job.id).exists()


def test_the_supervisor_is_the_maintenance_services_together(settings):
    settings.EDGEJOBS = {**settings.EDGEJOBS, "SUPERVISOR_INTERVAL": 2, "PRUNE_INTERVAL": 60}
    supervisor = Supervisor()
    services = supervisor.services()
    assert [s.name for s in services] == ["rescuer", "resumer", "job_expirer",
                                          "token_expirer", "pruner", "rollup"]
    assert [s.interval for s in services] == [2, 2, 2, 2, 60, 15]
    first = supervisor.run_once()
    assert set(first) == {"reclaimed", "resumed", "expired", "tokens_expired",
                          "minutes_rolled", "jobs_pruned", "events_pruned", "workers_pruned",
                          "batches_pruned"}
    assert "jobs_pruned" not in supervisor.run_once()  # the pruner waits PRUNE_INTERVAL


# -- the loop around them ------------------------------------------------------------------


class Counting(Service):
    def __init__(self, name: str, interval: float, fail_on: set[int] | None = None):
        self.name, self._interval, self.fail_on = name, interval, fail_on or set()
        self.calls, self.started, self.closed = 0, threading.Event(), threading.Event()

    @property
    def interval(self) -> float:
        return self._interval

    def start(self) -> None:
        self.started.set()

    def run_once(self) -> int:
        self.calls += 1
        if self.calls in self.fail_on:
            raise RuntimeError(f"pass {self.calls} failed")
        return self.calls

    def close(self) -> None:
        self.closed.set()


def test_a_loop_counts_passes_survives_a_failing_one_and_closes(caplog):
    fast, slow = Counting("fast", 0.01, fail_on={2}), Counting("slow", 3600)
    loop = ServiceLoop("test", [fast, slow])
    loop.start()
    try:
        assert loop.wait_for_passes("fast", 5, timeout=10)
        assert fast.started.is_set() and slow.started.is_set()
        assert loop.failures == {"fast": 1, "slow": 0}
        assert loop.passes["slow"] == 1  # each service at its own interval
        assert isinstance(loop.results["fast"], int) and loop.results["fast"] >= 5
        assert "fast: pass failed" in caplog.text
        assert not loop.wait_for_passes("slow", 2, timeout=0.05)  # gives up at the timeout
    finally:
        loop.stop()
        loop.join(10)
    assert loop.thread is not None and not loop.thread.is_alive()
    assert fast.closed.is_set() and slow.closed.is_set()
    assert not loop.wait_for_passes("slow", 2, timeout=10)  # a stopped loop does not block


def test_a_service_with_a_first_delay_waits_before_its_first_pass():
    """The latency rollup is not run at a worker's start (its first jobs are waiting)."""
    from django_edgejobs.runtime.maintenance import LatencyRollup

    fast, late = Counting("fast", 0.01), Counting("late", 0.01)
    late.first_delay = 3600
    loop = ServiceLoop("test", [fast, late])
    loop.start()
    try:
        assert loop.wait_for_passes("fast", 3, timeout=10)
        assert loop.passes["late"] == 0
    finally:
        loop.stop()
        loop.join(10)
    rollup = LatencyRollup()
    assert 0.5 * rollup.interval <= rollup.first_delay <= 1.5 * rollup.interval


def test_run_due_runs_only_what_is_due():
    a, b = Counting("a", 0.0), Counting("b", 3600)
    loop = ServiceLoop("test", [a, b])
    due: dict[str, float] = {}
    assert loop.run_due(due) == pytest.approx(0.0, abs=0.01)  # a is due again at once
    assert loop.run_due(due) == pytest.approx(0.0, abs=0.01)
    assert (a.calls, b.calls) == (2, 1)


def test_a_function_service_calls_its_function_and_its_close():
    closed = []
    service = FunctionService("f", 1.5, lambda: "did", close=lambda: closed.append(True))
    assert (service.name, service.interval, service.run_once()) == ("f", 1.5, "did")
    service.close()
    assert closed == [True]


# -- the process ---------------------------------------------------------------------------


def test_a_worker_alone_runs_neither_the_scheduler_nor_the_supervisor(register):
    register("t.x", lambda p, c: None)
    enqueue("t.x")
    seen: set[str] = set()
    worker = Worker(["default"], concurrency=1, poll_interval=0.05,
                    stop_when=lambda: bool(seen.update(edgejobs_threads())) or
                    Job.objects.filter(status="completed").exists())
    assert worker.run() == 0
    assert "edgejobs-heartbeat" in seen and "edgejobs-completer" in seen
    assert not seen & {"edgejobs-scheduler", "edgejobs-supervisor"}


def test_a_process_runs_the_services_beside_the_worker_and_stops_them(register, settings):
    settings.EDGEJOBS = {**settings.EDGEJOBS, "SUPERVISOR_INTERVAL": 0.05}
    register("t.x", lambda p, c: None)
    process = Process(Worker(["default"], concurrency=1, poll_interval=0.05))
    assert [loop.name for loop in process.loops] == ["supervisor", "scheduler"]
    thread = threading.Thread(target=process.run)
    thread.start()
    try:
        supervisor, scheduler = process.loop("supervisor"), process.loop("scheduler")
        assert supervisor.wait_for_passes("rescuer", 3, timeout=10)
        assert supervisor.wait_for_passes("pruner", 1, timeout=10)
        assert scheduler.wait_for_passes("scheduler", 1, timeout=10)
        assert {"edgejobs-supervisor", "edgejobs-scheduler"} <= edgejobs_threads()
        job = enqueue("t.x")
        wait_for(lambda: get_job(job.id).status == "completed", message="the job ran")
    finally:
        process.request_stop()
        thread.join(30)
    assert not thread.is_alive()
    wait_for(lambda: not edgejobs_threads(), timeout=10, message="every thread ended")
    row = WorkerRow.objects.get(id=process.worker.id)  # type: ignore[union-attr]
    assert row.stopped_at is not None


def test_a_burst_process_has_no_scheduler_and_a_scheduler_only_one_no_worker(register):
    register("t.x", lambda p, c: None)
    enqueue("t.x")
    burst = Process(Worker(["default"], burst=True, poll_interval=0.05), supervisor=False)
    assert burst.scheduler is None and burst.loops == []
    assert burst.run() == 0
    assert Job.objects.get().status == "completed"

    only = Process(None, supervisor=False)
    assert [loop.name for loop in only.loops] == ["scheduler"]
    thread = threading.Thread(target=only.run)
    thread.start()
    try:
        assert only.loop("scheduler").wait_for_passes("scheduler", 2, timeout=10)
    finally:
        only.request_stop()
        thread.join(30)
    assert not thread.is_alive()
