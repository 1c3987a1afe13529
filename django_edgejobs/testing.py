"""Helpers for the tests of projects that use django-edgejobs.

- :func:`run_jobs` runs every due job now, in the calling thread, through the worker's own
  claim → execute → complete path and on the caller's database connection, so it sees (and
  its writes join) the test's transaction: it works inside ``TestCase`` and pytest-django's
  ``db`` fixture.
- :class:`CapturedJobs` lists the jobs written since it was made (the ``edgejobs_enqueued``
  fixture of the pytest plugin).
- :class:`ImmediateBackend` and :class:`DummyBackend` are Django's two test backends, taking
  this app's task options (``@task(max_attempts=..., tags=..., idempotency_key=...)``).

The pytest plugin (``django_edgejobs.pytest_plugin``) wraps these in fixtures.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from copy import deepcopy
from traceback import format_exception
from typing import TYPE_CHECKING, Any

from django.tasks import TaskContext, TaskResult, TaskResultStatus
from django.tasks.backends.dummy import DummyBackend as DjangoDummyBackend
from django.tasks.backends.immediate import ImmediateBackend as DjangoImmediateBackend
from django.tasks.base import Task, TaskError
from django.tasks.exceptions import TaskResultDoesNotExist
from django.tasks.signals import task_enqueued, task_finished, task_started
from django.utils import timezone
from django.utils.json import normalize_json

from .conf import get_settings
from .exceptions import PermanentError
from .services.validation import check_result
from .tasks import TASK_TYPE_PREFIX, EdgeTask, EdgeTaskValidation, held_key

# The models, the store, the worker and the services that use them are imported inside the
# functions below: ImmediateBackend and DummyBackend are task backends, which django.tasks
# imports as soon as a Task is declared, possibly while the app registry is still loading.

if TYPE_CHECKING:
    from .models import Job

__all__ = ["CapturedJobs", "DummyBackend", "ImmediateBackend", "run_jobs"]

logger = logging.getLogger("django_edgejobs.testing")

#: run_jobs stops with an error past this many jobs (a job that enqueues jobs without end).
MAX_JOBS = 10_000


def run_jobs(queue: str | Iterable[str] | None = None, *, max_jobs: int = MAX_JOBS) -> int:
    """Run every due job, one at a time, best priority first, until none is due; return how
    many ran. ``queue``: a queue name (or names) to limit it to; None runs every queue.
    A paused queue's jobs do not run (``pause_queue``).

    Jobs the running jobs enqueue run too when they are due, and so do durable flows whose
    wait has come due (time waits, and token waits whose token was completed or timed out):
    each round first resumes them. Retries run again only once their delay has passed.

    Attempts run in this thread with the real worker code: results, retries, events and
    signals are as in ``runworker``. A ``KeyboardInterrupt`` stops it and gives the job back
    without using its attempt.
    """
    from .models import Job, Queue
    from .runtime.worker import Worker, default_worker_id
    from .services.tokens import expire_timed_out_tokens
    from .store import get_store

    only = [queue] if isinstance(queue, str) else None if queue is None else list(queue)
    store = get_store()
    worker = Worker(only or ["default"], concurrency=1, batch_size=1,
                    worker_id=f"run_jobs:{default_worker_id()}")
    ran = 0
    try:
        while True:
            store.resume_due()
            expire_timed_out_tokens()
            due = Job.objects.using(store.alias).due().exclude(
                queue__in=Queue.objects.using(store.alias).filter(paused=True).values("name"))
            if only is not None:
                due = due.filter(queue__in=only)
            queues = sorted(set(due.values_list("queue", flat=True)))
            if not queues:
                return ran
            if ran >= max_jobs:
                raise RuntimeError(
                    f"run_jobs ran {ran} jobs and more are due: does a job enqueue jobs "
                    "without end? (raise max_jobs if this many is expected)")
            worker.queues = queues
            if not worker.run_once():  # another worker took them meanwhile
                return ran
            ran += 1
    except BaseException:
        _give_back(store, worker.id)
        raise
    finally:
        if worker._registered:
            _quietly(store.stop_worker, worker.id)


def _give_back(store: Any, worker_id: str) -> None:
    """Jobs this caller claimed and did not finish go back to pending, attempt unused."""
    from .models import Job, JobStatus

    def release() -> None:
        for job in Job.objects.using(store.alias).filter(status=JobStatus.PROCESSING,
                                                         lease_owner=worker_id):
            store.release(job)

    _quietly(release)


def _quietly(fn: Any, *args: Any) -> None:
    try:
        fn(*args)
    except Exception as exc:  # e.g. the caller's transaction is broken: it rolls back anyway
        logger.debug("run_jobs clean-up skipped: %s", exc)


class CapturedJobs:
    """The jobs written since this object was made, oldest first, including the ones of the
    test's own (uncommitted) transaction. Call it to filter::

        captured = CapturedJobs()
        client.post("/signup/", {...})
        [welcome] = captured("send-email")
        assert welcome.payload == {"to": "new@example.com"}
        assert len(captured(task=send_receipt)) == 1    # a django.tasks Task (or its path)
    """

    def __init__(self) -> None:
        self.since = timezone.now()

    def __call__(self, type: str | None = None, *, queue: str | None = None,
                 task: Task | str | None = None) -> list[Job]:
        from .models import Job
        from .store import get_store

        jobs = Job.objects.using(get_store().alias).filter(created_at__gte=self.since)
        if type is not None:
            jobs = jobs.filter(type=type)
        if task is not None:
            path = task if isinstance(task, str) else task.module_path
            jobs = jobs.filter(type=TASK_TYPE_PREFIX + path)
        if queue is not None:
            jobs = jobs.filter(queue=queue)
        return list(jobs.order_by("created_at", "id"))

    def __iter__(self) -> Iterator[Job]:
        return iter(self())

    def __len__(self) -> int:
        return len(self())

    def __repr__(self) -> str:
        return f"<CapturedJobs since {self.since.isoformat()}: {len(self)} job(s)>"


# -- django.tasks test backends -------------------------------------------------------------


class ImmediateBackend(EdgeTaskValidation, DjangoImmediateBackend):
    """Django's ImmediateBackend (runs a Task when it is enqueued, in the caller), with this
    app's task options: ``max_attempts`` attempts at once (``EDGEJOBS['DEFAULT_MAX_ATTEMPTS']``
    when None; ``PermanentError`` stops them), one TaskError per failed attempt, and an
    ``idempotency_key`` already used returns the earlier result without running again.

    Retry delays and ``timeout`` are not applied (nothing waits, nothing is interrupted);
    return values must be storable as a job's result (JSON without NaN). Results of this
    backend can be read back with ``get_result`` in the same process; ``clear()`` forgets them.
    """

    task_class = EdgeTask

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        self.results: list[TaskResult[..., Any]] = []

    def enqueue(self, task: Task, args: Any, kwargs: Any) -> TaskResult:
        self.validate_task(task)
        earlier = held_key(self.results, task)
        if earlier is not None:
            return earlier
        result: TaskResult[..., Any] = super().enqueue(task, args, kwargs)
        self.results.append(result)
        return result

    def _execute_task(self, task_result: TaskResult) -> None:
        object.__setattr__(task_result, "enqueued_at", timezone.now())
        task_enqueued.send(type(self), task_result=task_result)
        task = task_result.task
        attempts = getattr(task, "max_attempts", None) or get_settings().DEFAULT_MAX_ATTEMPTS
        for attempt in range(1, attempts + 1):
            start = timezone.now()
            object.__setattr__(task_result, "status", TaskResultStatus.RUNNING)
            if task_result.started_at is None:
                object.__setattr__(task_result, "started_at", start)
            object.__setattr__(task_result, "last_attempted_at", start)
            task_result.worker_ids.append(self.worker_id)
            task_started.send(sender=type(self), task_result=task_result)
            try:
                if task.takes_context:
                    raw = task.call(TaskContext(task_result=task_result), *task_result.args,
                                    **task_result.kwargs)
                else:
                    raw = task.call(*task_result.args, **task_result.kwargs)
                object.__setattr__(task_result, "_return_value",
                                   check_result(normalize_json(raw)))
            except KeyboardInterrupt:
                raise  # the user tried to stop: let them (as Django does)
            except BaseException as exc:
                cls = type(exc)
                task_result.errors.append(TaskError(
                    exception_class_path=f"{cls.__module__}.{cls.__qualname__}",
                    traceback="".join(format_exception(exc)),
                ))
                if attempt < attempts and not isinstance(exc, PermanentError):
                    object.__setattr__(task_result, "status", TaskResultStatus.READY)
                    continue
                object.__setattr__(task_result, "finished_at", timezone.now())
                object.__setattr__(task_result, "status", TaskResultStatus.FAILED)
                task_finished.send(type(self), task_result=task_result)
                return
            object.__setattr__(task_result, "finished_at", timezone.now())
            object.__setattr__(task_result, "status", TaskResultStatus.SUCCESSFUL)
            task_finished.send(type(self), task_result=task_result)
            return

    def get_result(self, result_id: Any) -> TaskResult:
        for result in self.results:
            if result.id == result_id:
                return result
        raise TaskResultDoesNotExist(result_id)

    async def aget_result(self, result_id: Any) -> TaskResult:
        return self.get_result(result_id)

    def clear(self) -> None:
        self.results.clear()


class DummyBackend(EdgeTaskValidation, DjangoDummyBackend):
    """Django's DummyBackend (stores results, runs nothing) with this app's task options: an
    ``idempotency_key`` already used returns (a copy of) the earlier result and stores no
    new one. ``results[n].task`` carries the options each Task was enqueued with."""

    task_class = EdgeTask

    def enqueue(self, task: Task, args: Any, kwargs: Any) -> TaskResult:
        self.validate_task(task)
        earlier = held_key(self.results, task)
        if earlier is not None:
            return deepcopy(earlier)
        return super().enqueue(task, args, kwargs)
