"""A timed-out handler and its retry never run at the same time.

Python cannot stop a thread, so at the deadline the worker only marks the attempt timed out
(``ctx.timed_out``, ``ctx.cancelled``) and keeps the job: ``processing``, under its lease, its
slot busy. The timeout failure (and with it the retry) is written when the handler's thread
returns; a ``force_kill`` child is killed at the deadline, so its retry follows at once."""

from __future__ import annotations

import threading
import time

import pytest

from django_edgejobs import enqueue, get_job, get_job_events
from django_edgejobs.runtime.worker import Worker
from tests.conftest import wait_for
from tests.integration.test_worker_threads import Background

pytestmark = pytest.mark.django_db(transaction=True)

TIMEOUT_ERROR = "TimeoutError: attempt 1 exceeded its timeout of 0.3s"


class Recorder:
    """A thread handler whose first attempt ignores ``ctx.cancelled`` and blocks until the
    test releases it; every attempt records when it started and ended."""

    def __init__(self) -> None:
        self.log: list[tuple[str, int, float]] = []
        self.contexts: list = []
        self.release = threading.Event()
        self.lock = threading.Lock()

    def __call__(self, payload, ctx):
        with self.lock:
            self.log.append(("start", ctx.attempt, time.monotonic()))
            self.contexts.append(ctx)
        try:
            if ctx.attempt == 1:
                self.release.wait(20)
            return {"attempt": ctx.attempt}
        finally:
            with self.lock:
                self.log.append(("end", ctx.attempt, time.monotonic()))

    def first_timed_out(self) -> bool:
        return bool(self.contexts) and self.contexts[0].cancelled.is_set()

    def started(self, attempt: int) -> bool:
        with self.lock:
            return ("start", attempt) in [(kind, n) for kind, n, _ in self.log]


def hold_while_processing(job_id, seconds: float) -> list[tuple[str, int]]:
    """Sample the job's row for ``seconds``; return the (status, attempts) seen."""
    seen = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        job = get_job(job_id)
        seen.append((job.status, job.attempts))
        time.sleep(0.05)
    return seen


def test_the_retry_of_a_timed_out_thread_starts_only_after_the_thread_returned(register):
    handler = Recorder()
    register("t.overrun", handler)
    job = enqueue("t.overrun", timeout=0.3, max_attempts=2, retry_delay=0)
    # Two slots: a free one would start the retry at once if it were written at the deadline.
    with Background(Worker(["default"], concurrency=2, poll_interval=0.05)):
        wait_for(handler.first_timed_out, message="the worker noticed the deadline")
        assert handler.contexts[0].timed_out
        # The old thread is still running: the job stays processing, attempt 1, no retry.
        seen = hold_while_processing(job.id, 1.2)
        assert set(seen) == {("processing", 1)}, seen
        assert not handler.started(2)
        handler.release.set()
        wait_for(lambda: get_job(job.id).status == "completed", message="attempt 2 completed")

    log = handler.log
    assert [(kind, n) for kind, n, _ in log] == [("start", 1), ("end", 1), ("start", 2),
                                               ("end", 2)]
    end_1, start_2 = log[1][2], log[2][2]
    assert start_2 >= end_1, "the retry started while the timed-out thread was running"
    job = get_job(job.id)
    assert job.attempts == 2 and job.result == {"attempt": 2}
    assert job.last_error == TIMEOUT_ERROR
    assert [(e["attempt"], e["error"], e["exception"]) for e in job.error_history] == [
        (1, TIMEOUT_ERROR, "builtins.TimeoutError")]
    assert [e.type for e in get_job_events(job.id)] == [
        "added", "processing", "retried", "processing", "completed"]


def test_a_timed_out_thread_on_its_last_attempt_fails_the_job_when_it_returns(register):
    handler = Recorder()
    register("t.overrun", handler)
    register("t.quick", lambda p, c: "ok")
    job = enqueue("t.overrun", timeout=0.3, max_attempts=1)
    with Background(Worker(["default"], concurrency=1, poll_interval=0.05)):
        wait_for(handler.first_timed_out, message="the worker noticed the deadline")
        quick = enqueue("t.quick")
        # The slot really is busy: the next job waits, the timed-out one stays processing.
        seen = hold_while_processing(job.id, 0.8)
        assert set(seen) == {("processing", 1)}, seen
        assert get_job(quick.id).status == "pending"
        handler.release.set()
        wait_for(lambda: get_job(job.id).status == "failed", message="the timeout failure")
        wait_for(lambda: get_job(quick.id).status == "completed", message="the next job ran")
    job = get_job(job.id)
    assert job.last_error == TIMEOUT_ERROR
    assert job.result is None  # what the late handler returned is not kept
    assert [e.type for e in get_job_events(job.id)] == ["added", "processing", "failed"]


def test_a_cooperative_handler_that_stops_at_ctx_cancelled_is_retried_at_once(register):
    timed_out = []

    def handler(payload, ctx):
        if ctx.attempt == 1:
            ctx.cancelled.wait(20)
            timed_out.append(ctx.timed_out)
            return None
        return {"attempt": ctx.attempt}

    register("t.polite", handler)
    job = enqueue("t.polite", timeout=0.3, max_attempts=2, retry_delay=0)
    # A long poll interval: the loop still wakes for the deadline, and the retry is due at once.
    with Background(Worker(["default"], concurrency=1, poll_interval=30)):
        begun = time.monotonic()
        wait_for(lambda: get_job(job.id).status == "completed", timeout=10,
                 message="retried and completed")
        assert time.monotonic() - begun < 5
    assert timed_out == [True]
    job = get_job(job.id)
    assert job.attempts == 2 and job.error_history[0]["error"] == TIMEOUT_ERROR


def test_at_shutdown_a_still_running_timed_out_attempt_is_recorded_as_timed_out(register):
    handler = Recorder()
    register("t.overrun", handler)
    job = enqueue("t.overrun", timeout=0.3, max_attempts=2, retry_delay=3600)
    worker = Worker(["default"], concurrency=1, poll_interval=0.05, shutdown_timeout=0.3)
    try:
        bg = Background(worker).__enter__()
        wait_for(handler.first_timed_out, message="the worker noticed the deadline")
        worker.request_stop()
        bg.thread.join(10)
        assert bg.code == 0
        assert not handler.release.is_set() and len(handler.log) == 1  # still running
        # Not released (which would give the attempt back): the attempt timed out.
        job = get_job(job.id)
        assert (job.status, job.attempts, job.last_error) == ("pending", 1, TIMEOUT_ERROR)
        assert [e.type for e in get_job_events(job.id)] == ["added", "processing", "retried"]
    finally:
        handler.release.set()


def test_a_force_kill_child_is_killed_at_the_deadline_and_then_retried():
    """qa.spin (testproject/qa/jobs.py) is declared with force_kill=True; "spin" never ends."""
    job = enqueue("qa.spin", {"mode": "spin"}, timeout=1, max_attempts=2, retry_delay=0)
    with Background(Worker(["default"], concurrency=1, poll_interval=0.05)):
        wait_for(lambda: get_job(job.id).status == "failed", timeout=60,
                 message="both attempts killed")
    job = get_job(job.id)
    assert [e["error"] for e in job.error_history] == [
        "TimeoutError: attempt 1 exceeded its timeout of 1s",
        "TimeoutError: attempt 2 exceeded its timeout of 1s"]
    assert [e.type for e in get_job_events(job.id)] == [
        "added", "processing", "retried", "processing", "failed"]
