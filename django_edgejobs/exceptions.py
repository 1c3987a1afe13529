"""The exception tree. Failures subclass EdgeJobsError; control-flow signals live apart."""

from __future__ import annotations

import math


class EdgeJobsError(Exception):
    """A django-edgejobs operation failed."""

    def __init__(self, message: str | None = None):
        super().__init__(message or self.__doc__)


class UnknownJobType(EdgeJobsError, ValueError):
    """No handler is registered for this job type."""


class InvalidPayload(EdgeJobsError, ValueError):
    """The payload cannot be stored as JSON."""


class PermanentError(EdgeJobsError):
    """Raised by a handler: fail the job now, without further attempts."""


class InvalidStoredPayload(InvalidPayload, PermanentError):
    """A stored payload does not match its job type's schema; the job fails without retries."""


class JobNotFound(EdgeJobsError, LookupError):
    """No job has this id."""


class LeaseLost(EdgeJobsError):
    """This worker no longer holds the job's lease (it was reclaimed or finished elsewhere)."""


class ControlFlow(BaseException):
    """Base of the signals a handler raises to steer its job; never counted as a failure.

    A BaseException, like ``asyncio.CancelledError``: a handler's ``except Exception:``
    around ``ctx.wait_for(...)`` must not swallow the suspension."""


class Retry(ControlFlow):
    """Raised by a handler: run the job again after ``delay`` seconds (uses an attempt)."""

    def __init__(self, delay: float = 0, message: str | None = None):
        if (isinstance(delay, bool) or not isinstance(delay, int | float)
                or not math.isfinite(delay) or delay < 0):
            raise ValueError(f"Retry(delay=...) must be a number of seconds >= 0, got {delay!r}")
        self.delay = float(delay)
        super().__init__(message or f"retry requested in {self.delay:g}s")


class Wait(ControlFlow):
    """Raised by ``ctx.wait_*``: suspend the job (status ``waiting``, no attempt used) until
    ``until`` or until token ``token`` is completed or times out."""

    def __init__(self, until=None, token: str = ""):
        self.until = until
        self.token = token
        super().__init__(f"waiting for token {token}" if token else f"waiting until {until}")


class StepError(EdgeJobsError):
    """A durable step, wait or token was used wrongly."""
