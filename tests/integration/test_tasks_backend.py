"""EdgeJobsBackend: Django's Task API on the job store.

Where Django's own tests (tests/tasks/ of Django 6.1) define how a backend behaves, these
tests check the same expectations against this backend; tasks run through
``django_edgejobs.testing.run_jobs`` (the worker's claim/execute/finish path, in the test's
transaction)."""

from __future__ import annotations

import pickle
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.db import connections, transaction
from django.db.models.functions import Now
from django.tasks import TaskResultStatus, default_task_backend, task, task_backends
from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist, TaskResultMismatch
from django.tasks.signals import task_enqueued, task_finished, task_started
from django.test import override_settings
from django.utils import timezone

from django_edgejobs import (
    InvalidPayload,
    cancel_job,
    enqueue,
    get_job,
    get_job_events,
    reclaim_stuck_jobs,
    retry_job,
)
from django_edgejobs.models import Job
from django_edgejobs.runtime.worker import Worker
from django_edgejobs.store import get_store
from django_edgejobs.tasks import EdgeJobsBackend, EdgeTask
from django_edgejobs.testing import run_jobs
from tests.integration import sample_tasks as t

pytestmark = pytest.mark.django_db

TWO_BACKENDS = {
    "default": {"BACKEND": "django_edgejobs.tasks.EdgeJobsBackend",
                "QUEUES": ["default", "emails"]},
    "other": {"BACKEND": "django_edgejobs.tasks.EdgeJobsBackend", "QUEUES": []},
}


@pytest.fixture(autouse=True)
def _clean_calls() -> Iterator[None]:
    t.CALLS.clear()
    yield
    t.CALLS.clear()


@contextmanager
def captured(*signals: Any) -> Iterator[list[tuple[str, Any, Any]]]:
    """Record (signal name, sender, task_result) for each of these signals sent."""
    names = {task_enqueued: "enqueued", task_started: "started", task_finished: "finished"}
    seen: list[tuple[str, Any, Any]] = []
    receivers = []
    for signal in signals:
        def receiver(sender, task_result, _name=names[signal], **kwargs):
            seen.append((_name, sender, task_result))

        signal.connect(receiver, weak=False)
        receivers.append((signal, receiver))
    try:
        yield seen
    finally:
        for signal, receiver in receivers:
            signal.disconnect(receiver)


# -- the backend and its Task class ---------------------------------------------------------


def test_the_configured_backend_supports_everything():
    backend = task_backends["default"]
    assert isinstance(backend, EdgeJobsBackend) and default_task_backend.alias == "default"
    assert backend.supports_defer is True
    assert backend.supports_priority is True
    assert backend.supports_get_result is True
    assert backend.supports_async_task is True
    assert isinstance(t.noop_task, EdgeTask) and isinstance(t.noop_task_async, EdgeTask)
    assert backend.queues == {"default", "emails"}


def test_enqueue_writes_a_pending_job_and_returns_a_ready_result():
    for task_ in (t.noop_task, t.noop_task_async):
        result = task_.enqueue(1, two=3)
        assert result.status == TaskResultStatus.READY
        assert result.is_finished is False
        assert result.started_at is None and result.last_attempted_at is None
        assert result.finished_at is None and result.enqueued_at is not None
        with pytest.raises(ValueError, match="Task has not finished yet"):
            _ = result.return_value
        assert result.task == task_
        assert result.args == [1] and result.kwargs == {"two": 3}
        assert result.attempts == 0 and result.worker_ids == [] and result.errors == []
        assert result.backend == "default"
        job = get_job(result.id)
        assert job.type == f"task:{task_.module_path}"
        assert job.status == "pending" and job.queue == "default" and job.priority == 0
        assert job.payload == {"args": [1], "kwargs": {"two": 3}, "backend": "default"}
        assert job.created_at == result.enqueued_at


def test_a_worker_runs_sync_and_async_tasks_to_success():
    results = [t.noop_task.enqueue(1, two=3), t.noop_task_async.enqueue(1, two=3),
               t.calculate_meaning_of_life.enqueue(), t.async_meaning_of_life.enqueue()]
    assert run_jobs() == 4
    for result in results:
        result.refresh()
        assert result.status == TaskResultStatus.SUCCESSFUL
        assert result.is_finished is True
        assert result.started_at >= result.enqueued_at
        assert result.last_attempted_at == result.started_at
        assert result.finished_at >= result.started_at
        assert result.attempts == 1 and len(result.worker_ids) == 1
        assert result.worker_ids[0].startswith("run_jobs:")
        assert result.errors == []
    assert results[0].return_value is None and results[2].return_value == 42
    assert results[3].return_value == 42
    assert t.CALLS == [("noop", {"args": [1], "kwargs": {"two": 3}}),
                       ("noop_async", {"args": [1], "kwargs": {"two": 3}})]


def test_aenqueue_and_aget_result():
    result = async_to_sync(t.calculate_meaning_of_life.aenqueue)()
    assert result.status == TaskResultStatus.READY
    run_jobs()
    fetched = async_to_sync(t.calculate_meaning_of_life.aget_result)(result.id)
    assert fetched.status == TaskResultStatus.SUCCESSFUL and fetched.return_value == 42
    again = async_to_sync(default_task_backend.aget_result)(result.id)
    assert again == fetched
    async_to_sync(result.arefresh)()
    assert result.return_value == 42


@pytest.fixture
def hops(thread_hops: Any) -> list[str]:
    """The names of the functions the backend hands to Django's sync thread."""
    import django_edgejobs.tasks as module

    return thread_hops(module)


def test_aenqueue_and_aget_result_are_native(hops: list[str]):
    """Bad input raises in the coroutine, before any hop to the sync thread (Django's base
    backend hops first and raises there); a write or a read is exactly one hop."""
    before = Job.objects.count()
    with pytest.raises(TypeError, match="Unsupported type"):
        async_to_sync(default_task_backend.aenqueue)(t.noop_task, (object(),), {})
    for bad in ["not-a-uuid", 123, None]:
        with pytest.raises(TaskResultDoesNotExist):
            async_to_sync(default_task_backend.aget_result)(bad)
    assert hops == [] and Job.objects.count() == before
    result = async_to_sync(default_task_backend.aenqueue)(t.noop_task, (1,), {"two": 3})
    assert hops == ["_write"]
    assert get_job(result.id).payload["args"] == [1]
    assert async_to_sync(default_task_backend.aget_result)(result.id) == result
    assert hops == ["_write", "_read"]


def test_arguments_are_normalised_as_django_does_before_anything_is_written():
    result = t.noop_task.enqueue((1, (2, 3)), key={"nested": (4,)}, raw=b"bytes")
    assert result.args == [[1, [2, 3]]]
    assert result.kwargs == {"key": {"nested": [4]}, "raw": "bytes"}
    run_jobs()
    assert t.CALLS == [("noop", {"args": [[1, [2, 3]]],
                                 "kwargs": {"key": {"nested": [4]}, "raw": "bytes"}})]
    before = Job.objects.count()
    with pytest.raises(TypeError, match="Unsupported type"):
        t.noop_task.enqueue(datetime.now())
    with pytest.raises(TypeError, match="Unsupported type"):
        async_to_sync(t.noop_task.aenqueue)(object())
    with pytest.raises(InvalidPayload, match=r"payload\['kwargs'\]\['x'\] is nan"):
        t.noop_task.enqueue(x=float("nan"))
    assert Job.objects.count() == before


def test_get_result_raises_does_not_exist_for_unknown_or_malformed_ids():
    for bad in ["123", 123, None, "", "not-a-uuid", "00000000-0000-0000-0000-000000000000",
                ["list"]]:
        with pytest.raises(TaskResultDoesNotExist):
            default_task_backend.get_result(bad)
        with pytest.raises(TaskResultDoesNotExist):
            async_to_sync(default_task_backend.aget_result)(bad)
    with pytest.raises(TaskResultDoesNotExist):
        t.noop_task.get_result("123")


def test_get_result_refuses_jobs_that_are_not_tasks_of_this_backend(register):
    register("t.plain")
    plain = enqueue("t.plain", {"args": [], "kwargs": {}, "backend": "default"})
    with pytest.raises(TaskResultDoesNotExist):
        default_task_backend.get_result(str(plain.id))
    with override_settings(TASKS=TWO_BACKENDS):
        result = t.noop_task.using(backend="other").enqueue()
        assert result.backend == "other" and result.task.backend == "other"
        with pytest.raises(TaskResultDoesNotExist):
            task_backends["default"].get_result(result.id)
        fetched = task_backends["other"].get_result(result.id)
        assert fetched.task == t.noop_task.using(backend="other")
        fetched.refresh()  # through the task's own backend


def test_get_result_of_another_task_is_a_mismatch():
    result = default_task_backend.enqueue(t.noop_task_async, (), {})
    with pytest.raises(TaskResultMismatch, match="Task does not match"):
        t.noop_task.get_result(result.id)
    assert t.noop_task_async.get_result(result.id).id == result.id


def test_a_task_whose_code_is_gone_has_no_result_and_fails_when_run():
    result = t.noop_task.enqueue()
    Job.objects.filter(id=result.id).update(type="task:tests.integration.gone.noop_task")
    with pytest.raises(TaskResultDoesNotExist, match="cannot import the task"):
        default_task_backend.get_result(result.id)
    run_jobs()
    job = get_job(result.id)
    assert job.status == "pending" and "no handler is registered" in job.last_error


def test_a_task_must_be_importable_by_its_module_path():
    with pytest.raises(InvalidTask, match=r"is a function, not a django\.tasks Task"):
        t.renamed.enqueue()
    assert not Job.objects.exists()


# -- failures -------------------------------------------------------------------------------


@pytest.mark.parametrize(("task_", "exception", "message"), [
    (t.failing_task_value_error, ValueError, "This Task failed due to ValueError"),
    (t.failing_task_system_exit, SystemExit, "This Task failed due to SystemExit"),
])
def test_exceptions_fail_the_task_with_path_and_traceback(task_, exception, message):
    result = task_.enqueue()
    run_jobs()
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    with pytest.raises(ValueError, match="Task failed"):
        _ = result.return_value
    assert result.is_finished is True
    assert result.started_at >= result.enqueued_at
    assert result.finished_at >= result.started_at
    assert len(result.errors) == 1
    assert result.errors[0].exception_class is exception
    assert result.errors[0].traceback.startswith("Traceback (most recent call last):")
    assert result.errors[0].traceback.endswith(f"{exception.__name__}: {message}\n")
    assert result.args == [] and result.kwargs == {} and result.task == task_


def test_outcomes_are_logged_on_the_django_tasks_logger_as_djangos_backends_do(
        caplog, django_capture_on_commit_callbacks):
    """Django's ImmediateBackend tests: enqueued (DEBUG), state=RUNNING and state=SUCCESSFUL
    (INFO), each with the task's id; a failure at ERROR with the exception's message (its
    stored traceback: the exception itself is gone once the worker wrote the outcome)."""
    with caplog.at_level("DEBUG", logger="django.tasks"):
        with django_capture_on_commit_callbacks(execute=True):  # task_enqueued: on commit
            result = t.noop_task.enqueue()
        run_jobs()
    lines = [r.getMessage() for r in caplog.records if r.name == "django.tasks"]
    assert len(lines) == 3, lines
    assert "enqueued" in lines[0] and "state=RUNNING" in lines[1]
    assert "state=SUCCESSFUL" in lines[2] and all(result.id in line for line in lines)
    assert not any("NoneType" in r.getMessage() or r.exc_info for r in caplog.records)
    caplog.clear()
    with caplog.at_level("DEBUG", logger="django.tasks"):
        with django_capture_on_commit_callbacks(execute=True):
            failed = t.failing_task_value_error.enqueue()
        run_jobs()
    records = [r for r in caplog.records if r.name == "django.tasks"]
    assert [r.levelname for r in records] == ["DEBUG", "INFO", "ERROR"]
    assert "state=FAILED" in records[2].getMessage() and failed.id in records[2].getMessage()
    error_text = caplog.text.split("state=FAILED", 1)[1]
    assert "This Task failed due to ValueError" in error_text
    assert "builtins.ValueError" in error_text


def test_complex_exception_and_unserialisable_return_value():
    exc_result = t.complex_exception.enqueue()
    value_result = t.complex_return_value.enqueue()
    run_jobs()
    exc_result.refresh()
    value_result.refresh()
    assert exc_result.status == value_result.status == TaskResultStatus.FAILED
    assert exc_result.errors[0].exception_class is ValueError
    assert 'ValueError(ValueError("This task failed"))' in exc_result.errors[0].traceback
    assert value_result._return_value is None
    assert value_result.errors[0].exception_class is TypeError
    assert "Unsupported type" in value_result.errors[0].traceback


def test_keyboard_interrupt_is_not_swallowed_and_the_job_is_given_back():
    result = t.failing_task_keyboard_interrupt.enqueue()
    with pytest.raises(KeyboardInterrupt):
        run_jobs()
    job = get_job(result.id)
    assert job.status == "pending" and job.attempts == 0 and job.error_history == []
    assert [e.type for e in get_job_events(job.id)] == ["added", "processing", "released"]


@pytest.mark.django_db(transaction=True)
def test_keyboard_interrupt_raised_in_a_worker_thread_fails_the_attempt():
    # Only the main thread receives Ctrl-C; in a worker's threads it is the task's error.
    result = t.failing_task_keyboard_interrupt.enqueue()
    def work() -> None:
        try:
            Worker(["default"]).run_once()
        finally:
            connections.close_all()

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(30)
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    assert result.errors[0].exception_class is KeyboardInterrupt


def test_failed_attempts_are_retried_and_each_error_is_kept():
    result = t.fails_then_succeeds.enqueue(2)
    assert run_jobs() == 3
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert [c for _, c in t.CALLS] == [1, 2, 3]
    assert result.attempts == 3 and len(set(result.worker_ids)) == 1
    assert [e.exception_class for e in result.errors] == [ConnectionError, ConnectionError]
    assert result.errors[1].traceback.endswith("ConnectionError: attempt 2 failed\n")
    # What the task saw in its context on its last attempt:
    assert result.return_value == {"attempt": 3, "worker_ids": result.worker_ids, "errors": 2}


def test_a_result_between_attempts_is_ready_with_the_error_so_far():
    result = t.fails_then_succeeds.enqueue(5)  # max_attempts=3: fails for good
    Worker(["default"], worker_id="w-1").run_once()
    result.refresh()
    assert result.status == TaskResultStatus.READY and result.attempts == 1
    assert result.worker_ids == ["w-1"] and len(result.errors) == 1
    assert result.finished_at is None and result.started_at is not None
    run_jobs()
    result.refresh()
    assert result.status == TaskResultStatus.FAILED and result.attempts == 3
    assert result.worker_ids[0] == "w-1" and len(result.errors) == 3


def test_permanent_error_and_retry_raised_by_a_task():
    permanent = t.permanent.enqueue()
    later = t.retry_later.enqueue()
    assert run_jobs() == 2
    permanent.refresh()
    later.refresh()
    assert permanent.status == TaskResultStatus.FAILED and permanent.attempts == 1
    assert permanent.errors[0].exception_class.__name__ == "PermanentError"
    assert later.status == TaskResultStatus.READY and later.attempts == 1
    assert later.errors[0].exception_class.__name__ == "Retry"
    assert get_job(later.id).run_at > timezone.now() + timedelta(minutes=59)


def test_an_attempt_lost_with_its_worker_is_an_error_too():
    result = t.calculate_meaning_of_life.enqueue()
    store = get_store()
    assert len(store.claim("dead-worker", ["default"], 1)) == 1
    result.refresh()
    assert result.status == TaskResultStatus.RUNNING and result.worker_ids == ["dead-worker"]
    assert result.attempts == 1 and result.last_attempted_at is not None
    store.reclaim(0, owner="dead-worker")
    result.refresh()
    assert result.status == TaskResultStatus.READY
    error = result.errors[0]
    assert error.exception_class_path == "django_edgejobs.exceptions.EdgeJobsError"
    assert error.exception_class.__name__ == "EdgeJobsError"
    assert "dead-worker" in error.traceback and error.traceback.endswith("\n")
    run_jobs()
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.worker_ids[0] == "dead-worker" and len(result.worker_ids) == 2


def test_retry_job_runs_a_failed_task_again_and_a_lost_last_attempt_finishes_it():
    result = t.failing_task_value_error.enqueue()
    assert run_jobs() == 1
    result.refresh()
    assert result.status == TaskResultStatus.FAILED and len(result.errors) == 1
    assert retry_job(result.id)
    result.refresh()
    assert result.status == TaskResultStatus.READY and result.attempts == 0
    assert result.worker_ids == [] and len(result.errors) == 1  # the history stays
    assert result.finished_at is None and result.started_at is None
    assert run_jobs() == 1
    result.refresh()
    assert result.status == TaskResultStatus.FAILED and result.attempts == 1
    assert len(result.errors) == 2

    last = t.permanent.enqueue()
    Job.objects.filter(id=last.id).update(max_attempts=1)
    store = get_store()
    store.claim("dead-worker", ["default"], 1)
    with captured(task_finished) as seen:
        reclaim_stuck_jobs(worker_timeout=0)
    [(_, _, finished)] = seen
    assert finished.id == last.id and finished.status == TaskResultStatus.FAILED
    assert "dead-worker" in finished.errors[0].traceback


def test_a_released_attempt_does_not_count():
    result = t.calculate_meaning_of_life.enqueue()
    store = get_store()
    [job] = store.claim("leaving-worker", ["default"], 1)
    assert store.release(job)
    run_jobs()
    result.refresh()
    assert result.attempts == 1 and result.worker_ids[0].startswith("run_jobs:")


# -- context ----------------------------------------------------------------------------------


def test_takes_context_gets_the_result_id_and_the_attempt():
    with_id = t.get_task_id.enqueue()
    first = t.check_context.enqueue(1)
    async_ctx = t.async_with_context.enqueue("v")
    run_jobs()
    assert t.get_task_id.get_result(with_id.id).return_value == with_id.id
    checked = t.check_context.get_result(first.id)
    assert checked.status == TaskResultStatus.SUCCESSFUL and checked.return_value == 1
    assert t.async_with_context.get_result(async_ctx.id).return_value == {
        "attempt": 1, "value": "v", "id": async_ctx.id}


def test_context_attempt_counts_the_attempts_of_the_job():
    first = t.check_context.enqueue(1)
    # Asking for attempt 2 fails the first attempt (an AssertionError); the retry passes.
    second = t.check_context.enqueue(2)
    Job.objects.filter(id=second.id).update(max_attempts=2, retry_delay=0)
    run_jobs()
    assert t.check_context.get_result(first.id).attempts == 1
    result = t.check_context.get_result(second.id)
    assert result.status == TaskResultStatus.SUCCESSFUL and result.return_value == 2
    assert result.errors[0].exception_class is AssertionError


# -- signals ----------------------------------------------------------------------------------


def test_signals_are_sent_as_the_task_goes(django_capture_on_commit_callbacks):
    with captured(task_enqueued, task_started, task_finished) as seen:
        with django_capture_on_commit_callbacks(execute=True):
            result = t.fails_then_succeeds.enqueue(1)
        failing = t.failing_task_value_error.enqueue()
        run_jobs()
    def of(result_id: str) -> list[tuple[str, str, int]]:
        return [(name, r.status, r.attempts) for name, _, r in seen if r.id == result_id]

    assert of(result.id) == [
        ("enqueued", TaskResultStatus.READY, 0),
        ("started", TaskResultStatus.RUNNING, 1),  # attempt 1 fails and is retried: no finish
        ("started", TaskResultStatus.RUNNING, 2),
        ("finished", TaskResultStatus.SUCCESSFUL, 2),
    ]
    # The second enqueue's transaction never commits here: no task_enqueued for it.
    assert of(failing.id) == [("started", TaskResultStatus.RUNNING, 1),
                              ("finished", TaskResultStatus.FAILED, 1)]
    assert {sender for _, sender, _ in seen} == {EdgeJobsBackend}
    [finished] = [r for name, _, r in seen if name == "finished" and r.id == result.id]
    assert finished.return_value == {"attempt": 2, "worker_ids": finished.worker_ids,
                                     "errors": 1}
    assert seen[0][2] is result


def test_cancelling_a_task_finishes_it_as_failed(django_capture_on_commit_callbacks):
    result = t.noop_task.enqueue()
    with captured(task_finished) as seen, django_capture_on_commit_callbacks(execute=True):
        assert cancel_job(result.id)
    [(_, _, finished)] = seen
    assert finished.id == result.id and finished.status == TaskResultStatus.FAILED
    assert finished.finished_at is not None and finished.errors == []
    assert run_jobs() == 0


def test_a_job_that_is_not_a_task_sends_no_task_signal(register):
    register("t.plain", lambda payload, ctx: 1)
    with captured(task_started, task_finished) as seen:
        enqueue("t.plain")
        run_jobs()
    assert seen == []


@pytest.mark.django_db(transaction=True)
def test_task_enqueued_waits_for_the_commit_and_a_rollback_leaves_nothing():
    with captured(task_enqueued) as seen:
        with transaction.atomic():
            result = t.noop_task.enqueue()
            assert seen == []
        assert [r.id for _, _, r in seen] == [result.id]
        with pytest.raises(RuntimeError), transaction.atomic():
            rolled_back = t.noop_task.enqueue()
            raise RuntimeError("roll back")
        assert len(seen) == 1
    assert get_job(rolled_back.id) is None
    with pytest.raises(TaskResultDoesNotExist):
        default_task_backend.get_result(rolled_back.id)


# -- priority, run_after, queues ------------------------------------------------------------


def test_higher_priority_runs_first():
    t.record.using(priority=-10).enqueue("low")
    t.record.enqueue("normal")
    t.record.using(priority=100).enqueue("high")
    assert run_jobs() == 3
    assert [name for _, name in t.CALLS] == ["high", "normal", "low"]


def test_run_after_defers_the_task():
    at = timezone.now() + timedelta(hours=1)
    later = t.record.using(run_after=at)
    result = later.enqueue("later")
    job = get_job(result.id)
    assert job.run_at == at and result.task == later and result.task.run_after == at
    assert run_jobs() == 0
    assert t.record.get_result(result.id).task == later  # run_after kept with the job
    Job.objects.filter(id=result.id).update(run_at=Now())
    assert run_jobs() == 1
    assert t.record.get_result(result.id).status == TaskResultStatus.SUCCESSFUL


def test_run_after_may_be_a_timedelta_from_the_enqueue():
    delayed = t.record.using(run_after=timedelta(minutes=5))
    before = timezone.now()
    result = delayed.enqueue("x")
    job = get_job(result.id)
    assert before + timedelta(minutes=4) < job.run_at < timezone.now() + timedelta(minutes=6)
    assert t.record.get_result(result.id).task.run_after == timedelta(minutes=5)
    assert run_jobs() == 0
    with pytest.raises(InvalidTask, match="negative"):
        t.record.using(run_after=timedelta(seconds=-1))


def test_run_after_must_be_aware():
    with pytest.raises(InvalidTask, match="run_after must be an aware datetime"):
        t.noop_task.using(run_after=datetime.now())
    # This app needs aware times even without USE_TZ.
    with (override_settings(USE_TZ=False),
          pytest.raises(InvalidTask, match="run_after must be an aware datetime")):
        t.noop_task.using(run_after=datetime.now())


def test_priority_is_checked_as_django_does():
    for bad in (-101, 101, 3.1):
        with pytest.raises(InvalidTask, match="priority must be a whole number"):
            t.noop_task.using(priority=bad)
    assert t.noop_task.using(priority=100).priority == 100


def test_queues_are_validated_against_the_backend_queues():
    assert get_job(t.noop_task.using(queue_name="emails").enqueue().id).queue == "emails"
    with pytest.raises(InvalidTask, match=r"Queue 'reports' is not valid for backend\."):
        t.noop_task.using(queue_name="reports")
    with override_settings(TASKS=TWO_BACKENDS):
        # QUEUES = []: any queue (as Django), so long as a job can hold its name.
        other = t.noop_task.using(backend="other", queue_name="anything")
        assert get_job(other.enqueue().id).queue == "anything"
        with pytest.raises(InvalidTask, match="longer than 100 characters"):
            t.noop_task.using(backend="other", queue_name="q" * 101)
        with pytest.raises(InvalidTask, match="Queue 'x\\\\x00y' is not valid"):
            t.noop_task.using(backend="other", queue_name="x\x00y")


def test_checks_warn_about_queues_no_worker_serves():
    backend = EdgeJobsBackend("edge", {"QUEUES": ["default", "reports", "nightly"]})
    messages = list(backend.check())
    assert [(m.id, "nightly" in m.msg) for m in messages] == [("edgejobs.W101", True)]
    assert list(task_backends["default"].check()) == []
    bad = EdgeJobsBackend("edge", {"QUEUES": ["q" * 101]})
    assert "edgejobs.E102" in [m.id for m in bad.check()]


def test_manage_py_check_reports_the_backends_checks_in_a_fresh_process(tmp_path: Any):
    """Django registers its django.tasks check only when django.tasks is imported, which
    ``manage.py check`` alone does not do; this app's ready() does, so the backend's checks
    run. A settings module that imports nothing of django.tasks shows it."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    (tmp_path / "check_settings.py").write_text(
        "from testproject.settings import *  # noqa\n"
        "TASKS = {'default': {'BACKEND': 'django_edgejobs.tasks.EdgeJobsBackend',\n"
        "                     'QUEUES': ['default', 'q' * 101, 'nightly']}}\n")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "check_settings",
           "PYTHONPATH": os.pathsep.join([str(tmp_path), str(root / "testproject"), str(root)])}
    proc = subprocess.run([sys.executable, str(root / "testproject" / "manage.py"), "check"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "edgejobs.E102" in proc.stderr and "edgejobs.W101" in proc.stderr, proc.stderr


# -- this app's options ---------------------------------------------------------------------


def test_task_options_become_the_job_options():
    result = t.with_options.enqueue("ada")
    job = get_job(result.id)
    assert (job.max_attempts, job.retry_delay, job.retry_backoff, job.retry_delay_max,
            job.timeout) == (5, 7, False, 9, 30)
    assert job.tags == ["mail", "welcome"] and job.queue == "emails" and job.priority == -5
    assert job.payload == {"args": ["ada"], "kwargs": {}, "backend": "default"}
    task_ = result.task
    assert isinstance(task_, EdgeTask) and task_.tags == ("mail", "welcome")
    assert t.with_options.get_result(result.id).task == t.with_options
    run_jobs(queue="emails")
    assert t.with_options.get_result(result.id).return_value == "hello ada"


def test_defaults_come_from_the_edgejobs_settings():
    job = get_job(t.noop_task.enqueue().id)
    assert (job.max_attempts, job.retry_delay, job.timeout, job.tags) == (3, 60, None, [])


def test_using_sets_options_for_one_enqueue_and_the_result_keeps_them():
    special = t.with_options.using(max_attempts=2, tags=["vip"], idempotency_key="ada-1",
                                   timeout=5)
    assert isinstance(special, EdgeTask) and t.with_options.max_attempts == 5
    result = special.enqueue("ada")
    job = get_job(result.id)
    assert (job.max_attempts, job.tags, job.idempotency_key, job.timeout) == (
        2, ["vip"], "ada-1", 5)
    assert job.payload["task"] == {"max_attempts": 2, "timeout": 5, "tags": ["vip"],
                                   "idempotency_key": "ada-1"}
    fetched = t.with_options.get_result(result.id)
    assert fetched.task == special and fetched.task.tags == ("vip",)
    with pytest.raises(TypeError, match="unexpected keyword argument"):
        t.with_options.using(max_retries=3)


def test_an_idempotency_key_returns_the_earlier_result(django_capture_on_commit_callbacks):
    keyed = t.record.using(idempotency_key="once")
    with captured(task_enqueued) as seen, django_capture_on_commit_callbacks(execute=True):
        first = keyed.enqueue("first")
        again = keyed.enqueue("second")
    assert again.id == first.id and again.args == ["first"]
    assert len(seen) == 1 and Job.objects.count() == 1
    run_jobs()
    assert keyed.enqueue("third").status == TaskResultStatus.SUCCESSFUL


def test_an_idempotency_key_held_by_another_job_is_an_error(register):
    register("t.plain")
    enqueue("t.plain", idempotency_key="shared")
    with pytest.raises(ValueError, match=r"held by job .* of type 't\.plain'"):
        t.record.using(idempotency_key="shared").enqueue("x")


def test_invalid_options_are_refused_when_the_task_is_defined():
    func = t.calculate_meaning_of_life.func
    with pytest.raises(InvalidTask, match="max_attempts must be >= 1"):
        task(max_attempts=0)(func)
    with pytest.raises(InvalidTask, match="tags must be a list of strings"):
        task(tags="mail")(func)
    with pytest.raises(InvalidTask, match="timeout must be > 0"):
        t.record.using(timeout=0)
    with pytest.raises(TypeError):
        task(unknown_param=123)(func)  # as Django: the task class has no such field
    made = task(priority=10, queue_name="emails", retry_delay=timedelta(seconds=90),
                tags=["a", "a", "b"])(func)
    assert isinstance(made, EdgeTask) and made.retry_delay == 90 and made.tags == ("a", "b")
    assert made.priority == 10 and made.queue_name == "emails" and not made.takes_context


def test_tasks_and_their_results_pickle():
    result = t.with_options.using(tags=["x"]).enqueue("ada")
    assert pickle.loads(pickle.dumps(t.with_options)) == t.with_options
    assert pickle.loads(pickle.dumps(result)) == result


def test_a_task_carries_its_flow_control_options_onto_the_job():
    result = t.sync_account.enqueue(account_id=7)
    job = get_job(result.id)
    assert (job.concurrency_key, job.concurrency_limit) == ("account:7", 2)
    assert (job.rate_key, job.rate_limit, job.rate_period) == (
        f"type:task:{t.sync_account.module_path}", 10, 1.0)
    assert run_jobs() == 1 and t.CALLS[-1] == ("sync_account", 7)


def test_a_bad_flow_control_option_on_a_task_is_named():
    with pytest.raises(InvalidTask, match="concurrency_limit must be an integer >= 1, got 0"):
        task(concurrency_limit=0)(t.sync_account.func)
