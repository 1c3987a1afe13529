"""The worker's claim → run → finish path, one pass at a time (``Worker.run_once``)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from django.db import (
    DataError,
    ProgrammingError,
    connection,  # noqa: F401 - used by skipif conditions
)
from django.db.models.functions import Now
from django.utils import timezone

from django_edgejobs import PermanentError, Retry, enqueue, get_job, get_job_events, signals
from django_edgejobs.models import Job, JobEvent
from django_edgejobs.runtime.worker import Worker

pytestmark = pytest.mark.django_db


def events(job) -> list[str]:
    return [e.type for e in get_job_events(job.id)]


def run(queues=("default",), **kwargs) -> int:
    return Worker(list(queues), worker_id="test-worker", **kwargs).run_once()


def test_completed_job_stores_result_and_events(register):
    seen = {}

    def handler(payload, ctx):
        seen.update(job_id=ctx.job_id, attempt=ctx.attempt, max=ctx.max_attempts,
                    queue=ctx.queue, type=ctx.type)
        return {"doubled": payload["n"] * 2}

    register("t.double", handler)
    job = enqueue("t.double", {"n": 21})
    assert run() == 1
    job = get_job(job.id)
    assert job.status == "completed"
    assert job.result == {"doubled": 42}
    assert job.attempts == 1
    assert job.started_at is not None and job.completed_at is not None
    assert job.lease_token is None and job.lease_owner == ""
    assert seen == {"job_id": job.id, "attempt": 1, "max": 3, "queue": "default",
                    "type": "t.double"}
    assert events(job) == ["added", "processing", "completed"]


def test_failure_is_retried_with_backoff_then_dead_lettered(register):
    def boom(payload, ctx):
        raise ValueError(f"boom {ctx.attempt}")

    register("t.boom", boom)
    failed = []
    signals.job_failed.connect(lambda **kw: failed.append(kw), weak=False,
                               dispatch_uid="t-failed")
    try:
        job = enqueue("t.boom", max_attempts=2, retry_delay=100, retry_backoff=False)
        before = timezone.now()
        run()
        job = get_job(job.id)
        assert job.status == "pending"
        assert job.attempts == 1
        assert job.last_error == "ValueError: boom 1"
        # A fixed delay of 100 s, on the database's clock.
        assert before + timedelta(seconds=95) < job.run_at < before + timedelta(seconds=110)
        entry = job.error_history[0]
        assert entry["attempt"] == 1 and entry["error"] == "ValueError: boom 1"
        assert "Traceback" in entry["traceback"] and "boom" in entry["traceback"]
        assert entry["exception"] == "builtins.ValueError"
        assert run() == 0  # not due yet
        Job.objects.filter(id=job.id).update(run_at=Now())
        run()
        job = get_job(job.id)
        assert job.status == "failed"
        assert job.attempts == 2
        assert [e["error"] for e in job.error_history] == ["ValueError: boom 1",
                                                           "ValueError: boom 2"]
        assert events(job) == ["added", "processing", "retried", "processing", "failed"]
        assert [f["error"] for f in failed] == ["ValueError: boom 2"]
    finally:
        signals.job_failed.disconnect(dispatch_uid="t-failed")


def test_backoff_delay_grows_with_jitter_and_cap(register):
    register("t.boom", lambda p, c: 1 / 0)
    job = enqueue("t.boom", max_attempts=10, retry_delay=10, retry_delay_max=15)
    delays = []
    for _ in range(3):
        run()
        event = get_job_events(job.id)[-1]
        assert event.type == "retried"
        delays.append(event.data["delay"])
        Job.objects.filter(id=job.id).update(run_at=Now())
    assert 5 <= delays[0] <= 10      # 10 * 2**0 * [0.5, 1]
    assert 10 <= delays[1] <= 15     # 10 * 2**1 * [0.5, 1], capped at 15
    assert delays[2] <= 15           # capped


def test_permanent_error_fails_at_once(register):
    def handler(payload, ctx):
        raise PermanentError("card declined")

    register("t.perm", handler)
    job = enqueue("t.perm", max_attempts=5)
    run()
    job = get_job(job.id)
    assert job.status == "failed"
    assert job.attempts == 1
    assert job.last_error == "PermanentError: card declined"


def test_retry_signal_uses_exact_delay_and_an_attempt(register):
    def handler(payload, ctx):
        raise Retry(delay=42)

    register("t.later", handler)
    job = enqueue("t.later", max_attempts=2)
    before = timezone.now()
    run()
    job = get_job(job.id)
    assert job.status == "pending" and job.attempts == 1
    assert before + timedelta(seconds=41) < job.run_at < before + timedelta(seconds=44)
    Job.objects.filter(id=job.id).update(run_at=Now())
    run()
    assert get_job(job.id).status == "failed"  # Retry uses attempts: none left


def test_unknown_type_releases_that_job_and_the_worker_goes_on(register):
    register("t.ok", lambda p, c: "fine")
    register("t.gone", lambda p, c: None)
    gone = enqueue("t.gone", max_attempts=1, priority=5)
    ok = enqueue("t.ok")
    from django_edgejobs.registry import get_registry

    get_registry().unregister("t.gone")  # as if the worker ran older code
    assert run() == 2
    gone, ok = get_job(gone.id), get_job(ok.id)
    # Handed back for a worker that has the handler, its attempt unused; it fails only after
    # UNKNOWN_TYPE_GRACE (tests/integration/test_unknown_type.py).
    assert (gone.status, gone.attempts) == ("pending", 0)
    assert "no handler is registered for job type 't.gone'" in gone.last_error
    assert ok.status == "completed" and ok.result == "fine"


def test_result_that_is_not_json_fails_the_attempt(register):
    register("t.bad", lambda p, c: {"when": timezone.now()})
    job = enqueue("t.bad", max_attempts=1)
    run()
    job = get_job(job.id)
    assert job.status == "failed"
    assert "result['when'] is a datetime" in job.last_error


def test_async_handler(register):
    async def handler(payload, ctx):
        await asyncio.sleep(0)
        return {"async": True, "attempt": ctx.attempt}

    register("t.async", handler)
    job = enqueue("t.async")
    run()
    assert get_job(job.id).result == {"async": True, "attempt": 1}


def test_timeout_sets_cancelled_and_fails_the_attempt(register):
    seen = {}

    def slow(payload, ctx):
        seen["cancelled"] = ctx.cancelled.wait(10)
        return "too late"

    register("t.slow", slow)
    job = enqueue("t.slow", timeout=0.2, max_attempts=1)
    run()
    job = get_job(job.id)
    assert seen["cancelled"] is True
    assert job.status == "failed"
    assert job.last_error == "TimeoutError: attempt 1 exceeded its timeout of 0.2s"


def test_progress_is_stored_while_running(register):
    seen = []

    def handler(payload, ctx):
        ctx.set_progress(40)
        seen.append(get_job(ctx.job_id).progress)
        with pytest.raises(ValueError, match="progress must be a number from 0 to 100"):
            ctx.set_progress(101)
        return None

    register("t.progress", handler)
    job = enqueue("t.progress")
    run()
    assert seen == [40]
    assert get_job(job.id).progress == 40


def test_claim_respects_queues_due_time_and_priority(register):
    register("t.x", lambda p, c: c.job_id)
    later = enqueue("t.x", delay=3600)
    other = enqueue("t.x", queue="other")
    low = enqueue("t.x", priority=1)
    high = enqueue("t.x", priority=9)
    from django_edgejobs.store import get_store

    claimed = get_store().claim("w", ["default"], 10)
    assert [j.id for j in claimed] == [high.id, low.id]
    assert all(j.status == "processing" and j.attempts == 1 for j in claimed)
    assert get_job(later.id).status == "pending"
    assert get_job(other.id).status == "pending"


def test_attempt_is_counted_at_claim(register):
    register("t.x", lambda p, c: None)
    job = enqueue("t.x")
    from django_edgejobs.store import get_store

    get_store().claim("w", ["default"], 1)
    job = get_job(job.id)
    assert job.attempts == 1 and job.status == "processing" and job.lease_owner == "w"
    assert job.lease_token is not None


def test_a_lost_lease_refuses_the_late_write(register):
    from django_edgejobs.models import Worker as WorkerRow
    from django_edgejobs.runtime.supervisor import reclaim_stuck_jobs
    from django_edgejobs.store import Finish, get_store

    register("t.x", lambda p, c: None)
    job = enqueue("t.x")
    store = get_store()
    worker = Worker(["default"], worker_id="frozen")
    worker.register()
    (claimed,) = store.claim("frozen", ["default"], 1)
    WorkerRow.objects.filter(id="frozen").update(
        last_heartbeat=timezone.now() - timedelta(minutes=5))
    assert reclaim_stuck_jobs(worker_timeout=30) == 1
    job = get_job(job.id)
    assert job.status == "pending" and job.attempts == 1
    assert "stopped heart-beating" in job.last_error
    late = Finish(job_id=claimed.id, lease_token=claimed.lease_token, kind="completed",
                  result="stale")
    assert store.finish([late]) == set()
    job = get_job(job.id)
    assert job.status == "pending" and job.result is None
    assert events(job) == ["added", "processing", "reclaimed"]


def test_reclaim_fails_a_job_with_no_attempt_left(register):
    from django_edgejobs.runtime.supervisor import reclaim_stuck_jobs
    from django_edgejobs.store import get_store

    register("t.x", lambda p, c: None)
    job = enqueue("t.x", max_attempts=1)
    get_store().claim("ghost-worker-without-row", ["default"], 1)
    assert reclaim_stuck_jobs() == 1
    job = get_job(job.id)
    assert job.status == "failed"
    assert events(job)[-2:] == ["reclaimed", "failed"]


def test_reclaim_leaves_jobs_of_live_workers_alone(register):
    from django_edgejobs.runtime.supervisor import reclaim_stuck_jobs
    from django_edgejobs.store import get_store

    register("t.x", lambda p, c: None)
    job = enqueue("t.x")
    Worker(["default"], worker_id="alive").register()
    get_store().claim("alive", ["default"], 1)
    assert reclaim_stuck_jobs(worker_timeout=30) == 0
    assert get_job(job.id).status == "processing"


def test_release_gives_the_attempt_back(register):
    from django_edgejobs.store import Finish, get_store

    register("t.x", lambda p, c: None)
    job = enqueue("t.x")
    store = get_store()
    (claimed,) = store.claim("w", ["default"], 1)
    assert store.finish([Finish(job_id=claimed.id, lease_token=claimed.lease_token,
                                kind="released")]) == {claimed.id}
    job = get_job(job.id)
    assert job.status == "pending" and job.attempts == 0 and job.lease_token is None
    assert events(job)[-1] == "released"


def test_cleanup_prunes_only_old_finished_jobs_and_events(register):
    from django_edgejobs import cleanup_old_job_events, cleanup_old_jobs

    register("t.x", lambda p, c: None)
    old, recent, pending = enqueue("t.x"), enqueue("t.x"), enqueue("t.x", delay=999)
    run()
    Job.objects.filter(id=old.id).update(completed_at=timezone.now() - timedelta(days=40))
    JobEvent.objects.filter(job_id=old.id).update(created_at=timezone.now() - timedelta(days=40))
    assert cleanup_old_jobs() == 1
    assert get_job(old.id) is None
    assert get_job(recent.id).status == "completed"
    assert get_job(pending.id).status == "pending"
    assert cleanup_old_job_events() == 3
    assert cleanup_old_jobs(days=0) == 1


def test_worker_sends_started_completed_and_retried_signals(register):
    seen = []

    def receiver(signal_name):
        def receive(sender, job, **kwargs):
            seen.append((signal_name, job.type, sorted(kwargs) if kwargs else []))
        return receive

    receivers = {name: receiver(name) for name in ("job_started", "job_completed",
                                                   "job_retried")}
    for name, fn in receivers.items():
        getattr(signals, name).connect(fn, weak=False, dispatch_uid=f"t-{name}")
    try:
        register("t.ok", lambda p, c: 1)
        register("t.flaky", lambda p, c: 1 / 0)
        enqueue("t.ok", priority=1)
        enqueue("t.flaky")
        run()
    finally:
        for name in receivers:
            getattr(signals, name).disconnect(dispatch_uid=f"t-{name}")
    assert ("job_started", "t.ok", ["signal"]) in seen
    assert ("job_completed", "t.ok", ["result", "signal"]) in seen
    assert ("job_retried", "t.flaky", ["delay", "error", "signal"]) in seen


def test_store_verbs_are_fenced_by_the_lease(register):
    from django_edgejobs.store import get_store

    register("t.x", lambda p, c: None)
    a, b, c = enqueue("t.x"), enqueue("t.x"), enqueue("t.x")
    store = get_store()
    claimed = {j.id: j for j in store.claim("w", ["default"], 3)}
    assert store.complete(claimed[a.id], {"v": 1}) is True
    assert store.complete(claimed[a.id], {"v": 2}) is False  # lease already spent
    assert store.fail(claimed[b.id], "RuntimeError: no") is True
    assert store.release(claimed[c.id]) is True
    assert get_job(a.id).result == {"v": 1}
    assert get_job(b.id).status == "failed" and get_job(b.id).error_history[0]["attempt"] == 1
    assert get_job(c.id).status == "pending" and get_job(c.id).attempts == 0
    db_now = get_store().db_now()
    assert db_now.tzinfo is not None and abs(db_now - timezone.now()) < timedelta(seconds=5)


def test_an_outcome_that_cannot_be_stored_is_stored_reduced_never_failed(register):
    """A result the JSON encoder refuses at write time (an integer of 5,000 digits): the
    handler succeeded, so the job is completed, without its result, and its event says what
    was left out and why. The rest of the batch is stored as it was. (It used to fail the job:
    an outcome that cannot be stored must never become a failure of the job.)"""
    register("t.huge", lambda p, c: {"n": 10**5000})
    register("t.ok", lambda p, c: "fine")
    bad = enqueue("t.huge", max_attempts=3, priority=1)
    ok = enqueue("t.ok")
    assert run() == 2
    bad, ok = get_job(bad.id), get_job(ok.id)
    assert (bad.status, bad.attempts, bad.result, bad.last_error) == ("completed", 1, None, "")
    event = get_job_events(bad.id)[-1]
    assert event.type == "completed" and event.data["not_stored"] == ["result"]
    assert event.data["refused"].startswith("ValueError: Exceeds")
    assert ok.status == "completed" and ok.result == "fine"


def test_a_refused_retry_stays_a_retry(register, monkeypatch):
    """The database refuses the first write of a retry outcome (as if its text could not be
    stored): the retry is written reduced, with its error text, not turned into a failure."""
    from django_edgejobs.store import get_store

    def handler(payload, ctx):
        raise RuntimeError("flaky \N{SNOWMAN}")

    register("t.flaky", handler, max_attempts=3, retry_delay=0)
    job = enqueue("t.flaky")
    store = get_store()
    original, calls = store.finish, []

    def finish(outcomes):
        calls.append([o.kind for o in outcomes])
        if len(calls) == 1:
            raise DataError("invalid byte sequence for encoding")
        return original(outcomes)

    monkeypatch.setattr(store, "finish", finish)
    assert Worker(["default"], worker_id="w", batch_size=1).run_once() == 1
    stored = get_job(job.id)
    assert calls == [["retry"], ["retry"]]
    assert (stored.status, stored.attempts) == ("pending", 1)
    assert stored.last_error == "RuntimeError: flaky \\u2603"
    assert stored.error_history[-1]["traceback"] == ""
    event = get_job_events(job.id)[-1]
    assert event.type == "retried" and event.data["not_stored"] == ["traceback"]
    assert event.data["refused"] == "DataError: invalid byte sequence for encoding"


def test_lost_session_state_is_retried_on_a_new_connection(register, monkeypatch):
    """Behind a pooler in transaction mode a prepared statement can vanish between two
    transactions: the write is retried on a new connection and the outcome stored as it
    was (it once became a permanent failure)."""
    from django_edgejobs.store import get_store

    register("t.ok", lambda p, c: {"v": 1})
    job = enqueue("t.ok")
    store = get_store()
    original, calls = store.finish, []

    def finish(outcomes):
        calls.append(1)
        if len(calls) <= 2:
            raise ProgrammingError('prepared statement "_pg3_0" does not exist')
        return original(outcomes)

    monkeypatch.setattr(store, "finish", finish)
    assert Worker(["default"], worker_id="w").run_once() == 1
    stored = get_job(job.id)
    assert len(calls) == 3
    assert (stored.status, stored.result) == ("completed", {"v": 1})


def test_an_outcome_that_cannot_be_stored_at_all_leaves_the_job_to_be_handed_back(
        register, monkeypatch):
    """Refused as it was and refused reduced: nothing is written (no failure), the job stays
    processing under this worker, and the next process with its id reclaims it."""
    from django_edgejobs.runtime.supervisor import reclaim_orphans
    from django_edgejobs.store import get_store

    register("t.ok", lambda p, c: "fine")
    job = enqueue("t.ok", max_attempts=3)
    store = get_store()

    def finish(outcomes):
        raise DataError("refused, whatever it is")

    monkeypatch.setattr(store, "finish", finish)
    assert Worker(["default"], worker_id="stuck").run_once() == 1
    monkeypatch.undo()
    assert get_job(job.id).status == "processing"
    assert reclaim_orphans("stuck") == 1
    stored = get_job(job.id)
    assert (stored.status, stored.attempts) == ("pending", 1)
    assert stored.last_error == "worker stuck restarted while running attempt 1"
    assert run() == 1
    assert get_job(job.id).status == "completed"


def test_nul_characters_in_errors_are_stored_escaped(register):
    def handler(payload, ctx):
        raise ValueError("a\x00b")

    register("t.nul", handler)
    job = enqueue("t.nul", max_attempts=1)
    run()
    job = get_job(job.id)
    assert job.status == "failed"
    assert job.last_error == "ValueError: a\\x00b"


def test_run_once_beats_between_passes_when_the_interval_has_passed(register, settings):
    from django_edgejobs.models import Worker as WorkerRow

    register("t.noop", lambda p, c: None)
    settings.EDGEJOBS = {"HEARTBEAT_INTERVAL": 0.01}
    worker = Worker(["default"], worker_id="passes")
    worker.run_once()  # registers
    stale = timezone.now() - timedelta(hours=1)
    WorkerRow.objects.filter(id="passes").update(last_heartbeat=stale)
    worker._beaten -= 1  # the interval has passed
    worker.run_once()
    assert WorkerRow.objects.get(id="passes").last_heartbeat > stale + timedelta(minutes=59)
