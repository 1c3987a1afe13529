"""What a handler receives as ``ctx``: facts about the attempt and the durable primitives.

Steps, waits and tokens are recorded in ``Job.steps``: steps by name, waits and tokens by
their position in the handler (the 1st wait, the 2nd token, ...). A re-invoked handler
therefore replays: finished steps return their stored result, passed waits return at once and
``create_token`` returns the same token. Handlers must reach their waits and tokens in the same
order each time (use ``ctx.run`` for anything non-deterministic that decides the path).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ..exceptions import LeaseLost, StepError, Wait
from ..models import WaitToken
from ..models.job import RESERVED  # the reserved step-name prefix, still importable from here
from ..services.tokens import TokenResult
from ..services.validation import check_result, validate_tags

logger = logging.getLogger("django_edgejobs.worker")

if TYPE_CHECKING:
    from ..models import Job
    from ..store import Store


def blocking(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call a database function from sync code, or from inside an async handler, where Django
    refuses synchronous queries on the event loop's thread.

    An async handler runs under ``async_to_sync`` in the worker's (or the test's) thread; the
    call is handed to that thread, as ``sync_to_async(thread_sensitive=True)`` would, so it
    uses that thread's connection and transaction."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return fn(*args, **kwargs)
    from asgiref.sync import AsyncToSync

    executor = getattr(AsyncToSync.executors, "current", None)
    if executor is not None:
        return executor.submit(fn, *args, **kwargs).result()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # a loop we did not start
        return pool.submit(_closing, fn, *args, **kwargs).result()


def _closing(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    from django.db import connections

    try:
        return fn(*args, **kwargs)
    finally:
        connections.close_all()


class JobContext:
    """The running attempt of one job."""

    def __init__(self, job: Job, store: Store):
        self.job = job
        self.job_id: uuid.UUID = job.id
        self.type: str = job.type
        self.queue: str = job.queue
        self.attempt: int = job.attempts
        self.max_attempts: int = job.max_attempts
        self.payload: Any = job.payload
        #: Set on timeout, lease loss or worker shutdown: stop soon.
        self.cancelled = threading.Event()
        self.steps: dict[str, Any] = dict(job.steps or {})
        self._store = store
        self._lease_token = job.lease_token
        self._ran: set[str] = set()
        self._waits = 0
        self._tokens = 0
        self._on_timeout: list[Callable[[], float | None]] = []
        #: Events to write with the attempt's outcome (in its transaction, under its lease).
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.started: float | None = None
        self.deadline: float | None = None
        self.timed_out = False

    # -- time limits ------------------------------------------------------------------

    def begin(self) -> None:
        if self.started is not None:
            return
        self.started = time.monotonic()
        if self.job.timeout:
            self.deadline = self.started + float(self.job.timeout)

    def expire(self) -> None:
        """Mark the attempt as past its deadline and ask the handler to stop."""
        self.timed_out = True
        self.cancelled.set()

    def deadline_reached(self) -> bool:
        """At the deadline: run the ``on_timeout`` callbacks; any that returns seconds extends
        the deadline. True when the attempt is out of time."""
        extension = 0.0
        for callback in list(self._on_timeout):
            try:
                value = callback()
            except Exception:
                logger.exception("job=%s: an on_timeout callback raised; not extending",
                                 self.job_id)
                continue
            if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
                extension = max(extension, float(value))
        if extension:
            self.prolong(extension)
            return False
        self.expire()
        return True

    def prolong(self, seconds: float | None = None) -> None:
        """Push this attempt's deadline ``seconds`` from now (None: by the job's timeout)."""
        if seconds is None:
            seconds = self.job.timeout
        if seconds is None:
            return  # no timeout: nothing to push
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds <= 0:
            raise ValueError(f"prolong(seconds=...) must be a positive number, got {seconds!r}")
        self.deadline = time.monotonic() + float(seconds)
        self.events.append(("prolonged", {"attempt": self.attempt, "seconds": float(seconds)}))

    def on_timeout(self, callback: Callable[[], float | None]) -> None:
        """Call ``callback()`` at the deadline; if it returns seconds, the deadline moves."""
        if not callable(callback):
            raise TypeError("on_timeout needs a callable")
        self._on_timeout.append(callback)

    # -- progress ---------------------------------------------------------------------

    def set_progress(self, percent: float) -> None:
        """Store the job's progress (0-100) now; visible to ``get_job`` while the job runs."""
        if isinstance(percent, bool) or not isinstance(percent, int | float) or not (
            0 <= percent <= 100
        ):
            raise ValueError(f"progress must be a number from 0 to 100, got {percent!r}")
        assert self._lease_token is not None
        if not blocking(self._store.set_progress, self.job_id, self._lease_token, round(percent)):
            self.cancelled.set()  # the lease is gone: this attempt's writes no longer count

    # -- durable steps ----------------------------------------------------------------

    def _save_steps(self) -> None:
        assert self._lease_token is not None
        if not blocking(self._store.save_steps, self.job_id, self._lease_token, self.steps):
            self.cancelled.set()
            raise LeaseLost(f"job {self.job_id} was taken from this worker; step not recorded")

    def run(self, name: str, fn: Callable[[], Any]) -> Any:
        """Run ``fn()`` once for this job: its JSON result is stored, and a re-invoked handler
        gets the stored result without ``fn`` running again."""
        if not isinstance(name, str) or not name:
            raise StepError(f"a step name must be a non-empty string, got {name!r}")
        if name.startswith(RESERVED):
            raise StepError(f"step names starting with {RESERVED!r} are reserved: {name!r}")
        if name in self._ran:
            raise StepError(f"step {name!r} ran twice in one invocation of {self.type!r}; "
                            "each step of a handler needs its own name")
        self._ran.add(name)
        if name in self.steps:
            return self.steps[name]
        result = check_result(fn(), f"the result of step {name!r}")
        self.steps[name] = result
        self._save_steps()
        return result

    def _db_now(self) -> datetime:
        return blocking(self._store.db_now)

    # -- work across jobs -----------------------------------------------------------------

    def dependency_results(self) -> dict[uuid.UUID, Any]:
        """The results of this job's dependencies (``depends_on``), ``{job id: result}``; a
        dependency that failed or was cancelled (``on_dependency_failure="run"``) gives
        None. Empty for a job without dependencies."""
        return blocking(self._store.dependency_results, self.job_id)

    def wait_for(self, *, seconds: float = 0, minutes: float = 0, hours: float = 0,
                 days: float = 0, weeks: float = 0) -> None:
        """Suspend the job for this long (status ``waiting``, no worker slot, no attempt);
        the handler is re-invoked from the top when the time has come."""
        delta = timedelta(seconds=seconds, minutes=minutes, hours=hours, days=days, weeks=weeks)
        if delta.total_seconds() < 0:
            raise ValueError(f"wait_for needs a non-negative duration, got {delta}")
        self._wait(lambda now: now + delta)

    def wait_until(self, when: datetime) -> None:
        """Suspend the job until ``when`` (an aware datetime)."""
        if not isinstance(when, datetime) or when.tzinfo is None or when.utcoffset() is None:
            raise ValueError(f"wait_until needs a timezone-aware datetime, got {when!r}")
        self._wait(lambda now: when)

    def _wait(self, until_from_now: Callable[[datetime], datetime]) -> None:
        from django.utils.dateparse import parse_datetime

        self._waits += 1
        key = f"{RESERVED}wait:{self._waits}"
        now = self._db_now()
        if key in self.steps:
            until = parse_datetime(self.steps[key])
            assert until is not None
        else:
            until = until_from_now(now)
            self.steps[key] = until.isoformat()
        if until <= now:
            return
        raise Wait(until=until)

    # -- wait tokens ------------------------------------------------------------------

    def create_token(self, timeout: float | timedelta | None = None,
                     tags: Any = None) -> WaitToken:
        """A token that something outside completes (``complete_token`` or its signed URL).
        Replay-safe: a re-invoked handler gets the same token."""
        self._tokens += 1
        key = f"{RESERVED}token:{self._tokens}"
        if key in self.steps:
            token = blocking(WaitToken.objects.filter(id=self.steps[key]).first)
            # A deleted token: the same id, never to be answered (wait_for_token says so).
            return token or WaitToken(id=self.steps[key], job_id=self.job_id)
        if isinstance(timeout, timedelta):
            timeout = timeout.total_seconds()
        if timeout is not None and (isinstance(timeout, bool) or
                                    not isinstance(timeout, int | float) or timeout <= 0):
            raise ValueError(f"create_token(timeout=...) must be positive seconds, got {timeout!r}")
        tag_list = validate_tags(tags, where="create_token")
        assert self._lease_token is not None
        token = blocking(self._store.create_token, self.job_id, self._lease_token, key,
                         timeout, tag_list)
        if token is None:
            self.cancelled.set()
            raise LeaseLost(f"job {self.job_id} was taken from this worker; token not created")
        self.steps[key] = token.id
        return token

    def wait_for_token(self, token_id: str) -> TokenResult:
        """The token's result if it is completed or timed out; otherwise suspend the job until
        it is (the handler is then re-invoked and this call returns the result)."""
        token_id = getattr(token_id, "id", token_id)
        token = blocking(self._store.check_token, token_id)
        if token is None and token_id in self._own_tokens():
            return TokenResult(ok=False, error=f"token {token_id} was deleted")
        if token is None or token.job_id != self.job_id:
            raise StepError(f"wait_for_token: {token_id!r} is not a token of this job")
        if token.status == WaitToken.Status.COMPLETED:
            return TokenResult(ok=True, output=token.output)
        if token.status == WaitToken.Status.TIMED_OUT:
            return TokenResult(ok=False, error=f"token {token_id} timed out")
        raise Wait(until=token.timeout_at, token=token_id)

    def _own_tokens(self) -> set[str]:
        """The ids of the tokens this job created (recorded in its steps)."""
        prefix = f"{RESERVED}token:"
        return {v for k, v in self.steps.items() if k.startswith(prefix) and isinstance(v, str)}

    def __repr__(self) -> str:
        return f"<JobContext {self.type} {self.job_id} attempt {self.attempt}/{self.max_attempts}>"
