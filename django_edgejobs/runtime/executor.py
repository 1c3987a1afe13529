"""Run one attempt of one job and decide its outcome. No database writes happen here."""

from __future__ import annotations

import logging
import threading
import time
import traceback
from typing import TYPE_CHECKING, Any

from asgiref.sync import async_to_sync
from django.utils import timezone

from .. import telemetry
from ..conf import get_settings
from ..exceptions import PermanentError, Retry, UnknownJobType, Wait
from ..retry import retry_delay
from ..services.validation import check_result
from ..store.base import Finish, append_error
from .forcekill import RemoteError, run_in_child

if TYPE_CHECKING:
    from ..models import Job
    from ..registry import JobType, Registry
    from .context import JobContext

logger = logging.getLogger("django_edgejobs.worker")

MAX_TRACEBACK = 20_000

#: A job whose type has no handler here is handed back for a tenth of its age, within these
#: bounds (seconds): soon while it is young (a worker that has the handler may be starting),
#: less and less often as it ages, so old workers do not claim it over and over.
UNKNOWN_TYPE_DELAY_MIN = 1.0
UNKNOWN_TYPE_DELAY_MAX = 30.0


def printable(text: str) -> str:
    """Error text as the database can store it: PostgreSQL text refuses NUL, and no database
    stores a lone surrogate (``os.fsdecode`` of a non-UTF-8 file name), so each is written
    as its escape (``\\x00``, ``\\udcff``) instead of failing the write."""
    text = text.replace("\x00", "\\x00")
    return text if text.isascii() else text.encode("utf-8", "backslashreplace").decode("utf-8")


def describe(exc: BaseException) -> str:
    text = printable(str(exc))
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def exception_path(exc: BaseException) -> str:
    cls = type(exc)
    return f"{cls.__module__}.{cls.__qualname__}"


def call_handler(registry: Registry, job: Job, ctx: JobContext) -> Any:
    job_type = registry.get(job.type)
    if job_type is None:
        raise UnknownJobType(
            f"no handler is registered for job type {job.type!r} in this worker"
        )
    return run_handler(job_type, job, ctx)


def run_handler(job_type: JobType, job: Job, ctx: JobContext) -> Any:
    # A payload that no longer matches the type's schema raises InvalidStoredPayload, a
    # PermanentError: the same payload would fail every retry.
    payload = job_type.load_payload(job.payload)
    if job_type.force_kill:
        return run_in_child(job_type, job, ctx)  # the child loads the payload itself
    if job_type.is_async:
        return async_to_sync(job_type.func)(payload, ctx)
    return job_type.func(payload, ctx)


def failure(job: Job, ctx: JobContext, error: str, tb: str, *, exception: str,
            retry_after: float | None = None, permanent: bool = False) -> Finish:
    """The outcome of a failed attempt: retry when attempts remain, else failed."""
    tb = printable(tb)
    history = append_error(job.error_history, job.attempts, error, tb[-MAX_TRACEBACK:])
    history[-1]["exception"] = exception
    base: dict[str, Any] = dict(job_id=job.id, lease_token=job.lease_token, error=error,
                traceback=tb[-MAX_TRACEBACK:], attempt=job.attempts, error_history=history)
    if permanent or job.attempts >= job.max_attempts:
        return Finish(kind="failed", event_data={"attempt": job.attempts, "error": error,
                                                 "permanent": permanent}, **base)
    if retry_after is None:
        retry_after = retry_delay(job.attempts, delay=job.retry_delay,
                                  backoff=job.backoff_mode, multiplier=job.retry_multiplier,
                                  delay_max=job.retry_delay_max)
    return Finish(kind="retry", delay=retry_after,
                  event_data={"attempt": job.attempts, "error": error,
                              "delay": round(retry_after, 3)}, **base)


def unknown_type(job: Job, ctx: JobContext) -> Finish:
    """The outcome for a job whose type has no handler in this worker (a rolling deploy: the
    job was enqueued by newer code). Within ``UNKNOWN_TYPE_GRACE`` of its creation the job is
    released, its attempt given back and its run time pushed a little, for a worker that has
    the handler; after it, the job fails for good."""
    grace = float(get_settings().UNKNOWN_TYPE_GRACE)
    # Both on the database's clock where the store writes it: the claim stamps started_at.
    now = job.started_at or timezone.now()
    age = max((now - job.created_at).total_seconds(), 0.0)
    if age >= grace:
        error = (f"UnknownJobType: no worker has registered a handler for job type "
                 f"{job.type!r} within UNKNOWN_TYPE_GRACE ({grace:g} s) of its creation")
        return failure(job, ctx, error, "", exception=exception_path(UnknownJobType()),
                       permanent=True)
    left = grace - age
    delay = min(max(age / 10, UNKNOWN_TYPE_DELAY_MIN), UNKNOWN_TYPE_DELAY_MAX, left)
    error = (f"UnknownJobType: no handler is registered for job type {job.type!r} in worker "
             f"{job.lease_owner}; released for a worker that has one (the job fails if none "
             f"runs it within UNKNOWN_TYPE_GRACE, {left:.0f} s from now)")
    return Finish(job_id=job.id, lease_token=job.lease_token,  # type: ignore[arg-type]
                  kind="released", attempt=job.attempts, delay=delay, error=error,
                  event_data={"attempt": job.attempts, "reason": "unknown_type",
                              "worker": job.lease_owner, "delay": round(delay, 3),
                              "grace_left": round(left, 3)})


def timeout_failure(job: Job, ctx: JobContext) -> Finish:
    limit = f"its timeout of {job.timeout:g}s" if job.timeout else "its deadline"
    error = f"TimeoutError: attempt {job.attempts} exceeded {limit}"
    return failure(job, ctx, error, "", exception="builtins.TimeoutError")


def execute(registry: Registry, job: Job, ctx: JobContext) -> Finish:
    """Run the handler once and turn what happened into a Finish (stamped with when the
    handler began and ended, for the job's ``started_at`` and ``completed_at``)."""
    if not telemetry.active():
        return _finish(_execute(registry, job, ctx), ctx)
    with telemetry.consuming(job) as done:  # an OpenTelemetry CONSUMER span
        outcome = _finish(_execute(registry, job, ctx), ctx)
        done(outcome)
    return outcome


def _finish(outcome: Finish, ctx: JobContext) -> Finish:
    outcome.events = list(ctx.events)
    if ctx.started is not None:
        outcome.ran = (ctx.started, time.monotonic())
    return outcome


def _execute(registry: Registry, job: Job, ctx: JobContext) -> Finish:
    job_type = registry.get(job.type)
    if job_type is None:
        return unknown_type(job, ctx)
    ctx.begin()
    try:
        result = check_result(run_handler(job_type, job, ctx))
    except Wait as wait:
        return Finish(job_id=job.id, lease_token=job.lease_token,  # type: ignore[arg-type]
                      kind="waiting", attempt=job.attempts, until=wait.until,
                      wait_token=wait.token, steps=ctx.steps,
                      event_data={"attempt": job.attempts, "token": wait.token or None,
                                  "until": wait.until.isoformat() if wait.until else None})
    except Retry as exc:
        return failure(job, ctx, printable(f"Retry: {exc}"), "", exception="django_edgejobs.Retry",
                       retry_after=exc.delay)
    except RemoteError as exc:  # raised in a force_kill child: keep its own text
        if ctx.timed_out:
            return timeout_failure(job, ctx)
        return failure(job, ctx, printable(exc.description), exc.tb, exception=exc.path)
    except PermanentError as exc:
        return failure(job, ctx, describe(exc), traceback.format_exc(),
                       exception=exception_path(exc), permanent=True)
    except Exception as exc:
        if ctx.timed_out:
            return timeout_failure(job, ctx)
        return failure(job, ctx, describe(exc), traceback.format_exc(),
                       exception=exception_path(exc))
    except BaseException as exc:  # SystemExit, KeyboardInterrupt, CancelledError, GeneratorExit…
        if (isinstance(exc, KeyboardInterrupt)
                and threading.current_thread() is threading.main_thread()):
            # Only the main thread receives Ctrl-C: an attempt run there (run_once,
            # testing.run_jobs) lets it stop the caller, as Django's ImmediateBackend does.
            raise
        # Inside a worker's threads these end the attempt, not the process: the attempt fails
        # like any error (asyncio.CancelledError from an async handler included), so the job is
        # retried or failed instead of left processing under a live worker's lease.
        if ctx.timed_out:
            return timeout_failure(job, ctx)
        return failure(job, ctx, describe(exc), traceback.format_exc(),
                       exception=exception_path(exc))
    if ctx.timed_out or (ctx.deadline is not None and time.monotonic() > ctx.deadline):
        return timeout_failure(job, ctx)
    return Finish(job_id=job.id, lease_token=job.lease_token,  # type: ignore[arg-type]
                  kind="completed", result=result, attempt=job.attempts,
                  event_data={"attempt": job.attempts})


def log_outcome(job: Job, outcome: Finish, duration: float, accepted: bool) -> None:
    shown = outcome.kind if accepted else f"{outcome.kind} (refused: lease lost)"
    extra = f" error={outcome.error!r}" if outcome.error else ""
    if outcome.kind == "retry" or (outcome.kind == "released" and outcome.delay):
        extra += f" retry_in={outcome.delay:.1f}s"
    quiet = outcome.kind in ("completed", "waiting", "released")
    level = logging.INFO if quiet and accepted else logging.WARNING
    logger.log(level, "job=%s type=%s attempt=%d/%d duration=%.1fms outcome=%s%s",
               job.id, job.type, job.attempts, job.max_attempts, duration * 1000, shown, extra)
