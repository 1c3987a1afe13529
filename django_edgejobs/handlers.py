"""``@job`` and what it returns: a ``JobHandler`` (the function, plus ``.enqueue()`` and the
Celery-style calling API). The registry it fills is ``registry.py``."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, Literal, Never, TypeVar

from django.core.exceptions import ImproperlyConfigured

from .registry import JobType, get_registry

if TYPE_CHECKING:
    from .models import Job

#: The payload a handler takes (its first parameter's annotation) and what it returns.
P = TypeVar("P")
R = TypeVar("R")


class JobHandler(Generic[P, R]):  # noqa: UP046 - P and R are also job()'s free type vars
    """What ``@job`` returns: the function, still callable, plus ``.enqueue()``. Generic in
    the handler's payload and return types: ``@job`` on ``def f(payload: OrderIn, ctx:
    JobContext) -> Receipt`` gives a ``JobHandler[OrderIn, Receipt]``, whose ``enqueue``
    takes an ``OrderIn`` (checked by mypy and pyright)."""

    def __init__(self, job_type: JobType):
        self.job_type = job_type
        self.type = job_type.name
        functools.update_wrapper(self, job_type.func)
        if job_type.is_async:
            inspect.markcoroutinefunction(self)

    def __call__(self, *args: Any, **kwargs: Any) -> R:
        result: R = self.job_type.func(*args, **kwargs)
        return result

    # The services are imported when called: ``from django_edgejobs import job`` must work
    # in a jobs.py loaded before the app registry is ready (no models, no settings).

    def enqueue(self, payload: P | None = None, **options: Any) -> Job:
        return self._enqueue(payload, **options)

    async def aenqueue(self, payload: P | None = None, **options: Any) -> Job:
        """``enqueue`` for async code (see ``django_edgejobs.aenqueue``)."""
        from .services.enqueue import aenqueue

        return await aenqueue(self.type, payload, **options)

    def _enqueue(self, payload: Any, **options: Any) -> Job:
        from .services.enqueue import enqueue

        return enqueue(self.type, payload, **options)

    def enqueue_on_commit(self, payload: P | None = None, *, using: str | None = None,
                          **options: Any) -> Job:
        from .services.enqueue import enqueue_on_commit

        return enqueue_on_commit(self.type, payload, using=using, **options)

    # -- the Celery-style calling API (see docs/howto/migrate-from-celery.md) -------------
    # Typed like celery-types' ``Task.delay``/``apply_async`` for the options that map, and
    # narrower where Celery's do not: a payload is keyword arguments (no positional args), and
    # options without an equivalent are refused, by mypy (``Never``) and at run time.

    def delay(self, /, *args: Never, **payload: Any) -> Job:
        """``enqueue(type, payload)`` with the payload given as keyword arguments."""
        if args:
            raise TypeError(f"{self.type}.delay() takes the payload as keyword arguments only "
                            f"(a job's payload is a dict), got {len(args)} positional")
        return self._enqueue(payload)

    def apply_async(
        self,
        args: tuple[()] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        *,
        countdown: float | timedelta | None = None,
        eta: datetime | None = None,
        expires: float | timedelta | datetime | None = None,
        queue: str | None = None,
        priority: int | None = None,
        max_attempts: int | None = None,
        max_retries: int | None = None,
        retry_delay: float | timedelta | None = None,
        retry_backoff: bool | Literal["fixed", "linear", "exponential"] | None = None,
        retry_multiplier: float | None = None,
        retry_delay_max: float | timedelta | None = None,
        timeout: float | timedelta | None = None,
        tags: Sequence[str] | None = None,
        idempotency_key: str | None = None,
        **unsupported: Never,
    ) -> Job:
        """Celery's ``apply_async``: ``kwargs`` is the payload; ``countdown`` is ``delay``,
        ``eta`` is ``run_at``; ``expires`` (seconds, timedelta or aware datetime): a job not
        started by then is cancelled instead of run. This app's own options are accepted too.
        """
        if unsupported:
            names = ", ".join(sorted(unsupported))
            raise TypeError(f"{self.type}.apply_async(): Celery option(s) {names} have no "
                            "equivalent here (see docs/howto/migrate-from-celery.md)")
        if args:
            raise TypeError(f"{self.type}.apply_async(): positional args are not supported: "
                            "a job's payload is a dict, pass kwargs={...}")
        if countdown is not None and eta is not None:
            raise ValueError(f"{self.type}.apply_async(): pass countdown or eta, not both")
        if kwargs is not None and not isinstance(kwargs, Mapping):
            raise TypeError(f"{self.type}.apply_async(): kwargs must be a dict, got "
                            f"{type(kwargs).__name__}")
        options = {
            "delay": countdown, "run_at": eta, "expires": expires, "queue": queue,
            "priority": priority, "max_attempts": max_attempts, "max_retries": max_retries,
            "retry_delay": retry_delay, "retry_backoff": retry_backoff,
            "retry_multiplier": retry_multiplier,
            "retry_delay_max": retry_delay_max, "timeout": timeout,
            "tags": list(tags) if tags is not None and not isinstance(tags, str) else tags,
            "idempotency_key": idempotency_key,
        }
        payload = dict(kwargs) if kwargs is not None else {}
        return self._enqueue(payload, **{k: v for k, v in options.items() if v is not None})

    def __repr__(self) -> str:
        return f"<JobHandler {self.type!r} -> {self.job_type.origin}>"



def job(
    type: str,
    *,
    queue: str = "default",
    priority: int = 0,
    max_attempts: int | None = None,
    retry_delay: float | None = None,
    retry_backoff: bool | Literal["fixed", "linear", "exponential"] | None = None,
    retry_multiplier: float | None = None,
    retry_delay_max: float | None = None,
    timeout: float | None = None,
    force_kill: bool = False,
    schema: Any = None,
    concurrency_key: str | Callable[[Any], str] | None = None,
    concurrency_limit: int | None = None,
    rate_limit: Any = None,
    rate_key: str | Callable[[Any], str] | None = None,
    on_invalid: Literal["raise", "fail", "discard"] = "raise",
) -> Callable[[Callable[[P, Any], R]], JobHandler[P, R]]:
    """Register a handler ``fn(payload, ctx)`` for jobs of ``type``.

    The options are the defaults of jobs of that type; ``enqueue`` may override them.
    ``retry_backoff``: True / ``"exponential"`` (the delay times ``retry_multiplier``, 2 by
    default, per attempt), ``"linear"`` (plus ``retry_multiplier`` times the delay, 1 by
    default), False / ``"fixed"``.
    ``schema`` (a TypedDict, a dataclass or a pydantic model) checks payloads on enqueue and
    before each attempt; the handler then receives an instance of a dataclass or model schema
    (a TypedDict payload stays a dict). ``on_invalid`` says what ``enqueue`` does with a
    payload the schema refuses: ``"raise"`` ``InvalidPayload`` (nothing is written),
    ``"fail"``: write the job straight to ``failed`` with the validation error (a dead letter),
    ``"discard"``: write nothing, log a warning and return None.

    Flow control (``services/limits.py``): at most ``concurrency_limit`` jobs sharing a
    ``concurrency_key`` run at once (a ``str.format`` template over the payload or a callable
    ``payload -> str``; without one, the limit is for the type); ``rate_limit`` (``"N/s"``,
    ``"N/m"``, ``"N/h"`` or ``RateLimit``) caps the attempts that start in any window, per
    type or per ``rate_key``."""
    # Imported when @job runs: importing the package and ``job`` loads no services module.
    from .services.validation import MAX_TYPE_LENGTH, lone_surrogate, validate_options

    if not isinstance(type, str) or not type.strip():
        raise ImproperlyConfigured(f"@job needs a non-empty string type, got {type!r}")
    if len(type) > MAX_TYPE_LENGTH or "\x00" in type or lone_surrogate(type):
        raise ImproperlyConfigured(
            f"@job type names have at most {MAX_TYPE_LENGTH} characters, no NUL and no lone "
            f"surrogate: {type[:50]!r}")
    options = validate_options(
        {
            "queue": queue,
            "priority": priority,
            "max_attempts": max_attempts,
            "retry_delay": retry_delay,
            "retry_backoff": retry_backoff,
            "retry_multiplier": retry_multiplier,
            "retry_delay_max": retry_delay_max,
            "timeout": timeout,
        },
        where=f"@job({type!r})",
    )
    from .services.limits import limits_of

    limits = limits_of({"concurrency_key": concurrency_key, "concurrency_limit": concurrency_limit,
                        "rate_limit": rate_limit, "rate_key": rate_key}, where=f"@job({type!r})")

    def decorate(func: Callable[[P, Any], R]) -> JobHandler[P, R]:
        if not callable(func):
            raise ImproperlyConfigured(f"@job({type!r}) must decorate a function")
        job_type = JobType(name=type, func=func, force_kill=bool(force_kill), schema=schema,
                           limits=limits, on_invalid=on_invalid, **options)
        get_registry().register(job_type)
        return JobHandler(job_type)

    return decorate
