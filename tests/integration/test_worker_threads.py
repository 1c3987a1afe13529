"""The threaded worker (``Worker.run``), concurrent claimers and locking, on real connections."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, connections
from django.utils import timezone

from django_edgejobs import enqueue, enqueue_many, get_job, get_job_events
from django_edgejobs.models import Job
from django_edgejobs.models import Worker as WorkerRow
from django_edgejobs.runtime.process import Process
from django_edgejobs.runtime.worker import Worker
from django_edgejobs.store import get_store
from tests.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


class Background:
    """Run ``worker.run()`` (or a ``Process``'s) on a thread; stop and join on exit."""

    def __init__(self, worker: Worker | Process):
        self.worker = worker
        self.code: int | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self.code = self.worker.run()

    def __enter__(self) -> Background:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.worker.request_stop()
        self.thread.join(30)
        assert not self.thread.is_alive(), "worker did not stop"


def statuses(*jobs) -> list[str]:
    return [get_job(j.id).status for j in jobs]


def test_burst_runs_everything_due_and_exits_zero(register):
    ran = []
    lock = threading.Lock()

    def handler(payload, ctx):
        with lock:
            ran.append(payload["n"])

    register("t.n", handler)
    enqueue_many([{"type": "t.n", "payload": {"n": n}} for n in range(50)])
    future = enqueue("t.n", {"n": -1}, delay=3600)
    worker = Worker(["default"], concurrency=4, burst=True, poll_interval=0.05)
    assert worker.run() == 0
    assert sorted(ran) == list(range(50))
    assert Job.objects.filter(status="completed").count() == 50
    assert get_job(future.id).status == "pending"
    assert WorkerRow.objects.get(id=worker.id).stopped_at is not None


def test_burst_exits_zero_when_nothing_is_due():
    worker = Worker(["default"], burst=True, poll_interval=0.05)
    assert worker.run() == 0


def test_jobs_run_concurrently_up_to_the_concurrency(register):
    running, peak = [0], [0]
    lock = threading.Lock()
    release = threading.Event()

    def handler(payload, ctx):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        release.wait(5)
        with lock:
            running[0] -= 1

    register("t.block", handler)
    jobs = enqueue_many([{"type": "t.block"} for _ in range(6)])
    with Background(Worker(["default"], concurrency=3, poll_interval=0.05)):
        wait_for(lambda: peak[0] == 3, message="three jobs running at once")
        assert Job.objects.filter(status="processing").count() == 3
        release.set()
        wait_for(lambda: Job.objects.filter(status="completed").count() == 6,
                 message="all six completed")
    assert peak[0] == 3
    assert statuses(*jobs) == ["completed"] * 6


def test_a_hung_handler_keeps_its_job_and_slot_until_it_returns_then_fails(register):
    # A thread cannot be stopped: past its deadline the job stays processing and its slot
    # busy until the handler returns (tests/integration/test_timeout_overlap.py has more).
    stop_hung = threading.Event()
    contexts = []

    def hung(payload, ctx):
        contexts.append(ctx)
        stop_hung.wait(30)  # ignores ctx.cancelled on purpose

    register("t.hung", hung)
    register("t.quick", lambda p, c: "ok")
    slow = enqueue("t.hung", timeout=0.3, max_attempts=1)
    try:
        with Background(Worker(["default"], concurrency=1, poll_interval=0.05)):
            wait_for(lambda: contexts and contexts[0].cancelled.is_set(),
                     message="the deadline noticed")
            quick = enqueue("t.quick")
            time.sleep(0.5)
            assert statuses(slow, quick) == ["processing", "pending"]
            stop_hung.set()
            wait_for(lambda: get_job(slow.id).status == "failed", message="timeout failure")
            wait_for(lambda: get_job(quick.id).status == "completed",
                     message="the freed slot ran the next job")
    finally:
        stop_hung.set()
    job = get_job(slow.id)
    assert job.last_error == "TimeoutError: attempt 1 exceeded its timeout of 0.3s"
    assert [e.type for e in get_job_events(slow.id)] == ["added", "processing", "failed"]


def test_shutdown_lets_short_jobs_finish(register):
    started = threading.Event()

    def handler(payload, ctx):
        started.set()
        threading.Event().wait(0.3)  # some work
        return "done"

    register("t.short", handler)
    job = enqueue("t.short")
    worker = Worker(["default"], concurrency=1, poll_interval=0.05, shutdown_timeout=10)
    bg = Background(worker).__enter__()
    assert started.wait(5)
    worker.request_stop()
    bg.thread.join(10)
    assert bg.code == 0
    job = get_job(job.id)
    assert job.status == "completed" and job.result == "done"


def test_shutdown_releases_unfinished_jobs_without_using_an_attempt(register):
    started = threading.Event()
    finish = threading.Event()
    cancelled = []

    def handler(payload, ctx):
        started.set()
        finish.wait(10)
        cancelled.append(ctx.cancelled.is_set())

    register("t.long", handler)
    job = enqueue("t.long")
    other = enqueue("t.long", delay=0)
    worker = Worker(["default"], concurrency=1, poll_interval=0.05, shutdown_timeout=0.2)
    bg = Background(worker).__enter__()
    try:
        assert started.wait(5)
        worker.request_stop()
        bg.thread.join(10)
        assert bg.code == 0
    finally:
        finish.set()
    wait_for(lambda: cancelled, message="handler saw cancellation")
    assert cancelled == [True]
    job = get_job(job.id)
    assert job.status == "pending" and job.attempts == 0 and job.lease_token is None
    assert [e.type for e in get_job_events(job.id)] == ["added", "processing", "released"]
    assert get_job(other.id).status == "pending"  # never claimed after the stop request


def test_heartbeat_notices_a_lost_lease_and_cancels_the_attempt(register):
    seen = threading.Event()
    started = threading.Event()

    def handler(payload, ctx):
        started.set()
        if ctx.cancelled.wait(10):
            seen.set()

    register("t.watch", handler)
    job = enqueue("t.watch")
    worker = Worker(["default"], concurrency=1, poll_interval=0.05)
    with Background(worker):
        assert started.wait(5)
        # Another process decided this worker was dead and took the job back.
        Job.objects.filter(id=job.id).update(status="pending", lease_token=None,
                                             lease_owner="",
                                             run_at=timezone.now() + timedelta(hours=1))
        worker.heartbeat.run_once()
        assert seen.wait(5)
    assert get_job(job.id).status == "pending"


def test_supervisor_in_a_worker_reclaims_jobs_of_a_dead_worker(register, settings):
    settings.EDGEJOBS = {**settings.EDGEJOBS, "WORKER_TIMEOUT": 2, "HEARTBEAT_INTERVAL": 0.5}
    register("t.x", lambda p, c: "rescued")
    job = enqueue("t.x")
    dead = Worker(["default"], worker_id="dead-worker")
    dead.register()
    get_store().claim("dead-worker", ["default"], 1)
    WorkerRow.objects.filter(id="dead-worker").update(
        last_heartbeat=timezone.now() - timedelta(minutes=1))
    process = Process(Worker(["default"], poll_interval=0.05), scheduler=False)
    with Background(process):
        # the supervisor's rescuer passes: its first pass gives the job back
        assert process.loop("supervisor").wait_for_passes("rescuer", 1, timeout=10)
        wait_for(lambda: get_job(job.id).status == "completed", message="reclaimed and rerun")
    job = get_job(job.id)
    assert job.attempts == 2
    assert [e.type for e in get_job_events(job.id)] == [
        "added", "processing", "reclaimed", "processing", "completed"]


def test_max_jobs_stops_after_that_many(register):
    register("t.x", lambda p, c: None)
    enqueue_many([{"type": "t.x"} for _ in range(5)])
    assert Worker(["default"], concurrency=1, max_jobs=3, poll_interval=0.05).run() == 0
    assert Job.objects.filter(status="completed").count() == 3
    assert Job.objects.filter(status="pending").count() == 2


def test_concurrent_claimers_never_take_the_same_job(register):
    register("t.x", lambda p, c: None)
    enqueue_many([{"type": "t.x"} for _ in range(300)])
    taken: list = []
    lock = threading.Lock()

    def claimer(n: int) -> None:
        store = get_store()
        try:
            while True:
                jobs = store.claim(f"claimer-{n}", ["default"], 7)
                if not jobs:
                    return
                with lock:
                    taken.extend(j.id for j in jobs)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=claimer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(taken) == 300
    assert len(set(taken)) == 300


@pytest.mark.skipif("connection.vendor != 'postgresql'")
def test_claim_skips_rows_locked_by_another_connection(register):
    """SKIP LOCKED: a second connection holding a row lock does not block the claim."""
    import psycopg

    register("t.x", lambda p, c: None)
    locked, free = enqueue("t.x", priority=10), enqueue("t.x")
    params = connection.get_connection_params()
    for key in ("cursor_factory", "context", "prepare_threshold", "server_side_binding"):
        params.pop(key, None)
    with psycopg.connect(**params) as other:
        other.execute(f'SELECT id FROM "{Job._meta.db_table}" WHERE id = %s FOR UPDATE',
                      [locked.id])
        started = time.monotonic()
        claimed = get_store().claim("w", ["default"], 10)
        assert time.monotonic() - started < 5
        assert [j.id for j in claimed] == [free.id]
        other.rollback()
    assert [j.id for j in get_store().claim("w", ["default"], 10)] == [locked.id]


@pytest.mark.skipif("connection.vendor != 'postgresql'")
def test_notify_wakes_an_idle_worker_long_before_the_poll_interval(register):
    register("t.x", lambda p, c: None)
    worker = Worker(["default"], poll_interval=30)
    with Background(worker):
        wait_for(lambda: worker.listener is not None, message="listener started")
        assert worker.listener.connected.wait(10)
        job = enqueue("t.x")
        wait_for(lambda: get_job(job.id).status == "completed", timeout=5,
                 message="woken by NOTIFY")


def test_buffered_jobs_are_handed_back_at_once_on_shutdown(register):
    """A batch larger than the concurrency buffers claimed jobs; at shutdown those that never
    started go back to pending without an attempt, without waiting for the grace period."""
    started = threading.Event()
    finish = threading.Event()

    def handler(payload, ctx):
        started.set()
        finish.wait(10)

    register("t.block", handler)
    jobs = enqueue_many([{"type": "t.block"} for _ in range(5)])
    worker = Worker(["default"], concurrency=1, batch_size=5, poll_interval=0.05,
                    shutdown_timeout=10)
    bg = Background(worker).__enter__()
    assert started.wait(5)
    wait_for(lambda: Job.objects.filter(status="processing").count() == 5,
             message="all five claimed (one running, four buffered)")
    worker.request_stop()
    wait_for(lambda: Job.objects.filter(status="pending").count() == 4,
             message="the four buffered jobs released before the running one ends")
    finish.set()
    bg.thread.join(10)
    assert bg.code == 0
    rows = {j.id: get_job(j.id) for j in jobs}
    assert sorted(r.status for r in rows.values()) == ["completed"] + ["pending"] * 4
    assert all(r.attempts == 0 for r in rows.values() if r.status == "pending")


def test_a_deadline_is_enforced_promptly_even_with_a_long_poll_interval(register):
    started = threading.Event()

    def hung(payload, ctx):
        started.set()
        ctx.cancelled.wait(30)  # stops when told: the failure is written when it returns

    register("t.hung", hung)
    job = enqueue("t.hung", timeout=0.3, max_attempts=1)
    with Background(Worker(["default"], concurrency=1, poll_interval=30)):
        assert started.wait(10)
        begun = time.monotonic()
        wait_for(lambda: get_job(job.id).status == "failed", timeout=10,
                 message="failed at its deadline")
        assert time.monotonic() - begun < 5  # not after the 30 s poll interval


def test_a_reused_worker_id_gives_back_what_its_predecessor_left(register):
    from django_edgejobs import signals

    failed = []
    signals.job_failed.connect(lambda **kw: failed.append(kw["job"].id), weak=False,
                               dispatch_uid="t-orphan")
    try:
        register("t.x", lambda p, c: None)
        spent = enqueue("t.x", max_attempts=1)
        again = enqueue("t.x")
        get_store().claim("host:1", ["default"], 2)  # the predecessor died holding both
        Worker(["default"], worker_id="host:1").register()
    finally:
        signals.job_failed.disconnect(dispatch_uid="t-orphan")
    assert get_job(spent.id).status == "failed" and failed == [spent.id]
    assert get_job(again.id).status == "pending"


def test_the_commit_watcher_sees_commits_of_other_connections(vendor: str,
                                                              register: Any) -> None:
    """SQLite's wake-up: ``run_once`` is True once after another connection commits."""
    from django_edgejobs.store.wakeups import CommitWatcher

    if vendor != "sqlite":
        pytest.skip("SQLite only")
    register("t.noop")
    watcher = CommitWatcher("default")
    try:
        assert watcher.run_once() is False  # the first read has nothing to compare with
        assert watcher.run_once() is False
        enqueue("t.noop")  # committed by Django's connection
        assert watcher.run_once() is True
        assert watcher.run_once() is False
        with connection.cursor() as cursor:  # a read commits nothing
            cursor.execute("SELECT COUNT(*) FROM django_edgejobs_job")
        assert watcher.run_once() is False
    finally:
        watcher.close()


def test_with_no_batch_size_claims_grow_for_short_jobs_and_shrink_for_long_ones() -> None:
    from django_edgejobs.runtime.worker import ADAPTIVE_MAX_BATCH

    worker = Worker(["default"], concurrency=2)
    assert (worker.adaptive, worker.batch_size, worker.capacity) == (True, 2, 2)
    worker._learn(0.0002)  # no-op jobs: the largest batch
    assert (worker.batch_size, worker.capacity) == (ADAPTIVE_MAX_BATCH, ADAPTIVE_MAX_BATCH)
    worker._learn(1.0)  # one long job: a job per thread again, at once
    assert (worker.batch_size, worker.capacity) == (2, 2)
    for _ in range(30):  # 20 ms jobs: about 0.1 s of work per thread in the buffer
        worker._learn(0.02)
    assert worker.batch_size == 2 + int(2 * 0.1 / worker._run_time)
    assert 10 <= worker.batch_size <= 12
    fixed = Worker(["default"], concurrency=2, batch_size=3)
    fixed._learn(0.0002)
    assert (fixed.adaptive, fixed.batch_size, fixed.capacity) == (False, 3, 3)


def test_an_adaptive_worker_claims_short_jobs_in_batches(register):
    """One thread, no batch size: after the first job, claims take many no-op jobs at a
    time (the store's claims are counted)."""
    register("t.quick")
    store = get_store()
    claims: list[int] = []
    original = store.claim

    def counting(owner, queues, limit, types=None):
        jobs = original(owner, queues, limit, types)
        claims.append(len(jobs))
        return jobs

    jobs = enqueue_many([{"type": "t.quick"} for _ in range(300)])
    worker = Worker(["default"], concurrency=1, burst=True, poll_interval=0.05)
    worker.store.claim = counting  # type: ignore[method-assign]
    assert worker.run() == 0
    assert statuses(*jobs) == ["completed"] * 300
    assert claims[0] == 1  # nothing measured yet: a job per thread
    assert max(claims) > 1
    assert len(claims) < 300 // 2, claims


def test_a_retry_claimed_before_its_outcome_is_tidied_away_stays_in_flight(register):
    """A retry due at once can be claimed the moment the completer commits its outcome, and
    before the completer drops the finished entry from the jobs in flight. Dropping by job id
    removed the *new* attempt's entry: its deadline was never checked (a force_kill child
    spun for ever, 1 full SQLite run in 3), its lease not heart-beaten, its shutdown not
    waited for. The race, made certain: the claim runs inside the completer's write."""
    from django_edgejobs.runtime.worker import _STOP

    def fails_first(payload, ctx):
        if ctx.attempt == 1:
            raise RuntimeError("first attempt fails")

    register("t.twice", fails_first)
    job = enqueue("t.twice", max_attempts=2, retry_delay=0, timeout=30)
    worker = Worker(["default"], concurrency=1, batch_size=1)
    worker.register()
    [first] = worker._claim(1)
    worker._dispatch([first])
    entry = worker._inflight[job.id]
    outcome = worker._run_attempt(entry)
    assert outcome.kind == "retry"
    real_write = worker._write

    def write_then_claim(batch):
        real_write(batch)
        worker._dispatch(worker._claim(1))  # the claim loop, winning the race

    worker._write = write_then_claim
    worker._done.put((entry, outcome, 0.0))
    worker._done.put(_STOP)
    worker._completer_loop()
    second = worker._inflight.get(job.id)
    assert second is not None and second is not entry, "the new attempt left the jobs in flight"
    assert second.job.attempts == 2 and get_job(job.id).status == "processing"
    assert job.id in worker._leases()  # heart-beaten
