"""A ``django.tasks`` backend on the edgejobs job store.

    TASKS = {"default": {"BACKEND": "django_edgejobs.tasks.EdgeJobsBackend",
                         "QUEUES": ["default"]}}

A Task enqueued here is an ordinary Job of type ``task:<module path>`` whose payload holds its
arguments (``{"args": [...], "kwargs": {...}, "backend": alias}``, plus ``"task"`` when
``.using()`` changed the Task). The same ``runworker`` runs it, the same admin shows it, and
retries, timeouts, tags and idempotency keys work as for ``@job`` handlers: pass them to
``@task(...)`` or to ``.using(...)`` (they are fields of :class:`EdgeTask`, this backend's
``task_class``).

How Django's contract maps onto jobs:

- result id: the job's id (a UUID string). Status: pending and waiting → READY, processing →
  RUNNING, completed → SUCCESSFUL, failed and cancelled → FAILED.
- ``errors``: one TaskError per failed attempt, from the job's ``error_history``.
- ``worker_ids``: the worker that claimed each attempt (from the job's ``processing`` events);
  ``attempts`` and ``TaskContext.attempt`` count them, the running attempt included.
- signals: ``task_enqueued`` once the enqueueing transaction commits (at once outside one),
  ``task_started`` before each attempt, ``task_finished`` once the task has finished
  (SUCCESSFUL, or FAILED with no attempt left, or cancelled). An attempt that fails and is
  retried finishes nothing: the result goes back to READY with one more error.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from asgiref.sync import sync_to_async
from django.core import checks
from django.dispatch import receiver
from django.tasks import TaskContext, TaskResult, TaskResultStatus
from django.tasks.backends.base import BaseTaskBackend
from django.tasks.base import Task, TaskError
from django.tasks.exceptions import InvalidTask, InvalidTaskBackend, TaskResultDoesNotExist
from django.tasks.signals import task_enqueued, task_finished, task_started
from django.utils.dateparse import parse_datetime
from django.utils.json import normalize_json
from django.utils.module_loading import import_string

from . import signals
from .conf import get_settings
from .exceptions import UnknownJobType
from .registry import JobType
from .services.limits import limits_of
from .services.validation import (
    validate_idempotency_key,
    validate_options,
    validate_queue,
    validate_tags,
)

# The models, the store and the services that use them are imported inside the functions
# below: django.tasks imports this backend as soon as a Task is declared, which may be while
# the app registry is still loading, before models can be imported.

if TYPE_CHECKING:
    from .models import Job
    from .runtime.context import JobContext

logger = logging.getLogger("django_edgejobs.tasks")

#: Jobs of django.tasks Tasks have the type ``task:<module path of the Task>``.
TASK_TYPE_PREFIX = "task:"
#: This app's job options, carried by :class:`EdgeTask`.
TASK_OPTIONS = ("max_attempts", "retry_delay", "retry_backoff", "retry_multiplier",
                "retry_delay_max", "timeout", "tags", "idempotency_key")
#: Flow-control options of :class:`EdgeTask`, set on ``@task`` only (``using()`` keeps them):
#: a key may be a callable, which a job's stored task options cannot hold.
LIMIT_OPTIONS = ("concurrency_key", "concurrency_limit", "rate_limit", "rate_key")
#: The exception path of an error recorded without one (a reclaim after a worker died).
UNKNOWN_EXCEPTION = "django_edgejobs.exceptions.EdgeJobsError"

STATUS = {
    "pending": TaskResultStatus.READY,
    "waiting": TaskResultStatus.READY,
    "processing": TaskResultStatus.RUNNING,
    "completed": TaskResultStatus.SUCCESSFUL,
    "failed": TaskResultStatus.FAILED,
    "cancelled": TaskResultStatus.FAILED,
}


# -- the Task class ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class EdgeTask(Task):
    """A Task with this app's job options; ``None`` means the ``EDGEJOBS`` default.

    ``@task(max_attempts=5, retry_delay=30, timeout=60, tags=["mail"])`` sets them for every
    enqueue; ``.using(idempotency_key=f"welcome-{user.pk}")`` for one."""

    max_attempts: int | None = None
    retry_delay: float | None = None
    #: True, False or a mode: "fixed", "linear", "exponential" (see ``@job``).
    retry_backoff: bool | str | None = None
    retry_multiplier: float | None = None
    retry_delay_max: float | None = None
    timeout: float | None = None
    tags: tuple[str, ...] = ()
    idempotency_key: str | None = None
    #: Flow control, as ``@job``'s: a key template is filled from the job's payload,
    #: ``{"args": [...], "kwargs": {...}}`` (``"account:{kwargs[account_id]}"``).
    concurrency_key: Any = None
    concurrency_limit: int | None = None
    rate_limit: Any = None
    rate_key: Any = None

    def __post_init__(self) -> None:
        where = f"@task {getattr(self.func, '__qualname__', self.func)}"
        try:
            options = validate_options(
                {name: getattr(self, name) for name in ("max_attempts", "retry_delay",
                                                         "retry_backoff", "retry_multiplier",
                                                         "retry_delay_max", "timeout")},
                where=where)
            options["tags"] = tuple(validate_tags(self.tags, where=where))
            options["idempotency_key"] = validate_idempotency_key(self.idempotency_key,
                                                                  where=where)
            limits_of({name: getattr(self, name) for name in LIMIT_OPTIONS}, where=where)
        except ValueError as exc:
            raise InvalidTask(str(exc)) from None
        for name, value in options.items():
            object.__setattr__(self, name, value)
        Task.__post_init__(self)  # a slotted dataclass cannot use super() here

    def using(self, *, priority: int | None = None, queue_name: str | None = None,
              run_after: datetime | timedelta | None = None, backend: str | None = None,
              **options: Any) -> EdgeTask:
        """Django's ``using()``, plus this app's options (None leaves a value unchanged)."""
        unknown = sorted(set(options) - set(TASK_OPTIONS))
        if unknown:
            raise TypeError(f"using() got unexpected keyword argument(s) {', '.join(unknown)}; "
                            f"this app's options are {', '.join(TASK_OPTIONS)}")
        changes = {"priority": priority, "queue_name": queue_name, "run_after": run_after,
                   "backend": backend, **options}
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


def rebuild(task: Task, **changes: Any) -> Task:
    """A copy of ``task`` with ``changes``, without validating it again (a stored task keeps
    its identity when settings such as QUEUES change later)."""
    new = object.__new__(type(task))
    for f in dataclasses.fields(task):
        object.__setattr__(new, f.name, changes.get(f.name, getattr(task, f.name)))
    return new


def import_task(path: str) -> Task:
    """The module-level Task at ``path``; UnknownJobType says why there is none."""
    try:
        found = import_string(path)
    except ImportError as exc:
        raise UnknownJobType(f"cannot import the task {path!r}: {exc}") from None
    if not isinstance(found, Task):
        raise UnknownJobType(f"{path!r} is a {type(found).__name__}, not a django.tasks Task "
                             "(decorate the module-level function with @task)")
    return found


# -- what a job stores ----------------------------------------------------------------------


def _encode(name: str, value: Any) -> Any:
    if name == "run_after":
        if isinstance(value, timedelta):
            return {"seconds": value.total_seconds()}
        return value.isoformat() if value is not None else None
    return list(value) if name == "tags" else value


def _decode(name: str, value: Any) -> Any:
    if name == "run_after":
        if isinstance(value, dict):
            return timedelta(seconds=value["seconds"])
        return parse_datetime(value) if isinstance(value, str) else None
    return tuple(value) if name == "tags" else value


def _changes(task: Task, base: Task) -> dict[str, Any]:
    """What ``.using()`` changed, besides priority and queue (the job's own columns)."""
    out = {}
    for name in ("backend", "run_after", *TASK_OPTIONS):
        value = getattr(task, name, None)
        if value != getattr(base, name, None):
            out[name] = _encode(name, value)
    return out


def is_task_job(job: Job) -> bool:
    payload = job.payload
    return (job.type.startswith(TASK_TYPE_PREFIX) and isinstance(payload, dict)
            and isinstance(payload.get("args"), list) and isinstance(payload.get("kwargs"), dict)
            and isinstance(payload.get("backend"), str))


def task_of(job: Job, base: Task | None = None) -> Task:
    """The Task a job runs, as it was enqueued (priority and queue as the job has them now)."""
    if base is None:
        base = import_task(job.type[len(TASK_TYPE_PREFIX):])
    stored = job.payload.get("task") or {}
    changes = {name: _decode(name, stored[name]) for name in ("backend", "run_after",
                                                              *TASK_OPTIONS) if name in stored}
    return rebuild(base, priority=job.priority, queue_name=job.queue, **changes)


def _attempts(job: Job) -> list[tuple[str, datetime | None]]:
    """(worker id, start) of each attempt the job has used, from its ``processing`` events:
    a later claim of the same attempt number (a release or ``retry_job``) replaces it."""
    from .models import JobEvent

    if not job.attempts:
        return []
    rows = (JobEvent.objects.using(_alias(job))
            .filter(job_id=job.id, type=JobEvent.Kind.PROCESSING).order_by("id")
            .values_list("data", "created_at"))
    runs: list[tuple[str, datetime | None]] = []
    for data, at in rows:
        number = data.get("attempt") if isinstance(data, dict) else None
        if not isinstance(number, int) or number < 1:
            continue
        del runs[number - 1:]
        runs += [("", None)] * (number - 1 - len(runs))  # events pruned meanwhile
        runs.append((str(data.get("worker") or ""), at))
    runs = runs[:job.attempts]
    return runs + [("", job.started_at)] * (job.attempts - len(runs))


def _alias(job: Job) -> str:
    from .store import get_store

    return job._state.db or get_store().alias


def task_result(job: Job, task: Task | None = None) -> TaskResult:
    """The TaskResult of a task job, as stored."""
    payload = job.payload
    runs = _attempts(job)
    status = STATUS[job.status]
    finished = status in (TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED)
    errors = [
        TaskError(exception_class_path=str(entry.get("exception") or UNKNOWN_EXCEPTION),
                  traceback=str(entry.get("traceback") or f"{entry.get('error', '')}\n"))
        for entry in (job.error_history or []) if isinstance(entry, dict)
    ]
    result: TaskResult[..., Any] = TaskResult(
        task=task_of(job) if task is None else task,
        id=str(job.id),
        status=status,
        enqueued_at=job.created_at,
        started_at=(runs[0][1] or job.started_at) if runs else None,
        last_attempted_at=(runs[-1][1] or job.started_at) if runs else None,
        finished_at=job.completed_at if finished else None,
        args=payload["args"],
        kwargs=payload["kwargs"],
        backend=payload["backend"],
        errors=errors,
        worker_ids=[worker for worker, _ in runs],
    )
    if status == TaskResultStatus.SUCCESSFUL:
        object.__setattr__(result, "_return_value", job.result)
    return result


def _sender(alias: str) -> type:
    """The backend class signals name as sender (Django sends ``type(backend)``)."""
    from django.tasks import task_backends

    try:
        return type(task_backends[alias])
    except InvalidTaskBackend:  # enqueued under an alias this process does not configure
        return EdgeJobsBackend


# -- the backend ----------------------------------------------------------------------------


class EdgeTaskValidation:
    """``validate_task`` of the backends that take :class:`EdgeTask` (this one and the test
    backends of ``django_edgejobs.testing``): Django's checks, plus ``run_after`` as a
    timedelta from the enqueue (as Django documents it) and queue names that fit a job."""

    supports_defer: bool

    def validate_task(self, task: Task) -> None:
        run_after = task.run_after
        if isinstance(run_after, timedelta):
            if not self.supports_defer:
                raise InvalidTask("Backend does not support run_after.")
            if run_after < timedelta(0):
                raise InvalidTask("run_after must not be a negative timedelta.")
            task = rebuild(task, run_after=None)
        elif isinstance(run_after, datetime) and run_after.utcoffset() is None:
            raise InvalidTask("run_after must be an aware datetime.")  # even with USE_TZ off
        elif run_after is not None and not isinstance(run_after, datetime):
            raise InvalidTask(f"run_after must be a datetime or a timedelta, got {run_after!r}.")
        super().validate_task(task)  # type: ignore[misc]
        try:
            validate_queue(task.queue_name, where="task")
        except ValueError as exc:
            reason = str(exc).split(": ", 1)[-1]
            raise InvalidTask(f"Queue {task.queue_name!r} is not valid for backend: "
                              f"{reason}.") from None


def held_key(results: Iterable[TaskResult], task: Task) -> TaskResult | None:
    """The earlier result holding ``task``'s idempotency key, if any (in-memory backends)."""
    key = getattr(task, "idempotency_key", None)
    if not key:
        return None
    for result in results:
        if getattr(result.task, "idempotency_key", None) == key:
            if result.task.module_path != task.module_path:
                raise ValueError(f"idempotency_key {key!r} is held by result {result.id} of "
                                 f"task {result.task.module_path!r}, not by this task")
            return result
    return None


class EdgeJobsBackend(EdgeTaskValidation, BaseTaskBackend):
    """Django's Task API on the edgejobs job store, run by ``runworker``."""

    task_class = EdgeTask
    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def enqueue(self, task: Task, args: Iterable[Any], kwargs: Mapping[str, Any]) -> TaskResult:
        return self._write(task, *self._build(task, args, kwargs))

    async def aenqueue(self, task: Task, args: Iterable[Any],
                       kwargs: Mapping[str, Any]) -> TaskResult:
        """``enqueue`` for async code: the Task, its arguments and options are checked and the
        job built in the calling coroutine (bad input raises there, before any thread hop);
        only the write runs in Django's sync thread, as the async ORM's methods do (Django's
        database connections are synchronous), in one hop."""
        built, base = self._build(task, args, kwargs)
        return await sync_to_async(self._write, thread_sensitive=True)(task, built, base)

    def _build(self, task: Task, args: Iterable[Any], kwargs: Mapping[str, Any]) -> tuple:
        """The checked, unsaved job of this call and the Task at its module path."""
        from .services.enqueue import build_job

        self.validate_task(task)
        # As Django's reference backends do (TaskResult normalises them): TypeError for
        # what JSON cannot hold, tuples become lists.
        payload = {"args": normalize_json(args), "kwargs": normalize_json(kwargs),
                   "backend": self.alias}
        path = task.module_path
        try:
            base = import_task(path)
        except UnknownJobType as exc:
            raise InvalidTask(str(exc)) from None
        if base.func is not task.func:
            raise InvalidTask(f"{path!r} is another Task; a Task must be importable by its "
                              "module path to run in a worker")
        changes = _changes(task, base)
        if changes:
            payload["task"] = changes
        built = build_job(TASK_TYPE_PREFIX + path, payload, where="task enqueue",
                          **self._job_options(task))
        return built, base

    def _write(self, task: Task, built: Job, base: Task) -> TaskResult:
        from django.db import transaction

        from .services.enqueue import _write

        job = _write([built])[0]
        if job is not built:  # an earlier job holds the idempotency key
            if job.type != built.type or not is_task_job(job):
                raise ValueError(f"idempotency_key {built.idempotency_key!r} is held by job "
                                 f"{job.id} of type {job.type!r}, not by a job of this task")
            return task_result(job, task_of(job, base))
        result = task_result(job, task)
        transaction.on_commit(lambda: task_enqueued.send(type(self), task_result=result),
                              using=job._state.db)
        return result

    @staticmethod
    def _job_options(task: Task) -> dict[str, Any]:
        options: dict[str, Any] = {"queue": task.queue_name, "priority": task.priority}
        if isinstance(task.run_after, timedelta):
            options["delay"] = task.run_after
        elif task.run_after is not None:
            options["run_at"] = task.run_after
        for name in (*TASK_OPTIONS, *LIMIT_OPTIONS):
            value = getattr(task, name, None)
            if value is not None and value != ():
                options[name] = list(value) if name == "tags" else value
        return options

    def get_result(self, result_id: Any) -> TaskResult:
        from .services.jobs import parse_job_id

        return self._read(result_id, parse_job_id(result_id))

    async def aget_result(self, result_id: Any) -> TaskResult:
        """``get_result`` for async code: an id that cannot be a job's raises
        ``TaskResultDoesNotExist`` in the calling coroutine, without a database read; the read
        (the job and its attempts' workers) is one hop to Django's sync thread."""
        from .services.jobs import parse_job_id

        job_id = parse_job_id(result_id)
        if job_id is None:
            raise TaskResultDoesNotExist(result_id)
        return await sync_to_async(self._read, thread_sensitive=True)(result_id, job_id)

    def _read(self, result_id: Any, job_id: Any) -> TaskResult:
        from .models import Job
        from .store import get_store

        job = None
        if job_id is not None:
            job = Job.objects.using(get_store().alias).filter(id=job_id).first()
        if job is None or not is_task_job(job) or job.payload["backend"] != self.alias:
            raise TaskResultDoesNotExist(result_id)
        try:
            return task_result(job)
        except UnknownJobType as exc:
            raise TaskResultDoesNotExist(f"{result_id}: {exc}") from exc

    def check(self, **kwargs: Any) -> list[checks.CheckMessage]:
        from django.apps import apps

        found = list(super().check(**kwargs))
        where = f"TASKS[{self.alias!r}]"
        if not apps.is_installed("django_edgejobs"):
            return [*found, checks.Error(
                f"{where} uses EdgeJobsBackend but django_edgejobs is not installed",
                hint="Add 'django_edgejobs' to INSTALLED_APPS.", id="edgejobs.E101")]
        for queue in sorted(self.queues, key=str):
            try:
                validate_queue(queue, where=f"{where}['QUEUES']")
            except ValueError as exc:
                found.append(checks.Error(str(exc), id="edgejobs.E102"))
        served = set(get_settings().QUEUES)
        for queue in sorted(q for q in self.queues if isinstance(q, str) and q not in served):
            found.append(checks.Warning(
                f"{where}['QUEUES'] has the queue {queue!r}, which runworker does not serve "
                "unless started with --queue",
                hint=f"Add {queue!r} to EDGEJOBS['QUEUES'], or run a worker with "
                     f"--queue {queue}.", id="edgejobs.W101"))
        return found


# -- running, for the worker ----------------------------------------------------------------


def resolve_task_type(name: str) -> JobType:
    """The handler of jobs of type ``task:<module path>`` (a Registry resolver)."""
    base = import_task(name[len(TASK_TYPE_PREFIX):])

    def run(payload: Any, ctx: JobContext) -> Any:
        return run_task(ctx.job, base)

    return JobType(
        name=name, func=run, queue=base.queue_name, priority=base.priority,
        max_attempts=getattr(base, "max_attempts", None),
        retry_delay=getattr(base, "retry_delay", None),
        retry_backoff=getattr(base, "retry_backoff", None),
        retry_multiplier=getattr(base, "retry_multiplier", None),
        retry_delay_max=getattr(base, "retry_delay_max", None),
        timeout=getattr(base, "timeout", None),
    )


class TaskFailed(Exception):
    """The stored error of a failed task, re-raised only to hand it to Django's
    ``task_finished`` logger (see ``_send_task_finished``)."""


def run_task(job: Job, base: Task) -> Any:
    """One attempt of a task job, as Django's ImmediateBackend runs one: ``task_started``,
    the call (with a TaskContext when the Task takes one), the return value normalised."""
    result = task_result(job, task_of(job, base))  # the job is processing: RUNNING
    task = result.task
    task_started.send(_sender(result.backend), task_result=result)
    if task.takes_context:
        value = task.call(TaskContext(task_result=result), *result.args, **result.kwargs)
    else:
        value = task.call(*result.args, **result.kwargs)
    return normalize_json(value)


@receiver(signals.job_completed, dispatch_uid="django_edgejobs.tasks.completed")
@receiver(signals.job_failed, dispatch_uid="django_edgejobs.tasks.failed")
@receiver(signals.job_cancelled, dispatch_uid="django_edgejobs.tasks.cancelled")
def _send_task_finished(sender: Any, job: Job, **kwargs: Any) -> None:
    """A task job has finished (its outcome is stored): send Django's ``task_finished``."""
    if not job.type.startswith(TASK_TYPE_PREFIX):
        return
    from .models import Job as JobModel

    stored = JobModel.objects.using(_alias(job)).filter(id=job.id).first()
    if stored is None or not is_task_job(stored):
        return
    try:
        result = task_result(stored)
    except UnknownJobType as exc:
        logger.warning("job=%s: no task_finished signal: %s", job.id, exc)
        return
    if result.status != TaskResultStatus.FAILED or not result.errors:
        task_finished.send(_sender(result.backend), task_result=result)
        return
    # Django's own backends send task_finished inside the handler's ``except``, and its
    # "django.tasks" logger logs the failure with that exception (sys.exc_info()). The job
    # failed in a worker thread, maybe another process, and its exception is gone: the
    # signal is sent while a TaskFailed carrying the stored traceback is being handled, so
    # the log shows what went wrong, as Django's does.
    error = result.errors[-1]
    try:
        raise TaskFailed(f"{error.exception_class_path}\n{error.traceback}".rstrip())
    except TaskFailed:
        task_finished.send(_sender(result.backend), task_result=result)
