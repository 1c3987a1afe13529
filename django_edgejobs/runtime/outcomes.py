"""Tell signal receivers what became of a job: the in-memory job is first brought up to date
with the outcome the worker stored, and a receiver that raises never stops the worker."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from .. import signals
from ..fingerprints import error_group
from ..models.transitions import COMPLETE, FAIL, OUTCOMES, RETRY
from ..store import Finish

if TYPE_CHECKING:
    from ..models import Job

logger = logging.getLogger("django_edgejobs.worker")


def send_robust(signal: Any, job: Job, **kwargs: Any) -> None:
    """Send a signal; a receiver that raises is logged and never stops the worker."""
    for receiver, result in signal.send_robust(sender=job.__class__, job=job, **kwargs):
        if isinstance(result, Exception):
            logger.error("job=%s: a signal receiver (%r) raised %r", job.id, receiver, result,
                         exc_info=result)


def _apply(job: Job, outcome: Finish) -> None:
    """Bring the in-memory job up to date with a stored outcome (for signal receivers)."""
    from django.utils import timezone

    now = timezone.now()
    job.lease_token, job.lease_owner, job.updated_at = None, "", now
    if outcome.kind == "completed":
        job.status, job.result, job.completed_at = "completed", outcome.result, now
    elif outcome.kind in ("retry", "failed"):
        job.last_error, job.error_history = outcome.error, outcome.error_history
        job.error_group = error_group(outcome.error, outcome.error_history)
        job.status = "pending" if outcome.kind == "retry" else "failed"
        if outcome.kind == "retry":
            job.run_at = now + timedelta(seconds=outcome.delay)
        else:
            job.completed_at = now
    elif outcome.kind == "waiting":
        job.status, job.attempts, job.wait_token = "waiting", job.attempts - 1, outcome.wait_token
        job.run_at = outcome.until or now
    elif outcome.kind == "released":
        job.status, job.attempts = "pending", job.attempts - 1
        job.run_at = now + timedelta(seconds=outcome.delay)
        if outcome.error:
            job.last_error, job.error_group = outcome.error, None


#: The longest error text a reduced outcome keeps.
REDUCED_ERROR_CHARS = 2000


def _plain(text: str) -> str:
    """Text any database stores: ASCII (escapes for the rest, NUL included), and short."""
    return text.encode("ascii", "backslashreplace").decode().replace("\x00", "\\x00")[
        :REDUCED_ERROR_CHARS]


def reduced(outcome: Finish, refusal: BaseException) -> Finish:
    """The same outcome with only what any database stores: used when the database refused the
    outcome as it was (a data error). The job's fate does not change: a completed attempt is
    stored completed (without its result), a retry is still a retry, a wait still a wait.
    Error texts become short ASCII, the new traceback and the attempt's extra events are
    dropped, and the outcome's event says what was left out (``not_stored``) and why
    (``refused``)."""
    history = [{k: _plain(v) if isinstance(v, str) else v for k, v in entry.items()}
               for entry in outcome.error_history]
    if history:
        history[-1]["traceback"] = ""
    data: dict[str, Any] = {k: _plain(v) if isinstance(v, str) else v
                            for k, v in outcome.event_data.items()
                            if v is None or isinstance(v, str | int | float | bool)}
    data.update(not_stored=["result"] if outcome.kind == "completed" else ["traceback"],
                refused=_plain(f"{type(refusal).__name__}: {refusal}"))
    return dataclasses.replace(outcome, result=None, error=_plain(outcome.error), traceback="",
                               error_history=history, events=[], event_data=data)


def send_outcome_signal(job: Job, outcome: Finish) -> None:
    _apply(job, outcome)
    sent = _SIGNALS.get(outcome.kind)
    if sent is not None and sent[0].has_listeners():
        send_robust(sent[0], job, **sent[1](outcome))


#: A signal's arguments besides ``job``, by transition (its signal: the transition table's).
_ARGUMENTS: dict[str, Callable[[Finish], dict[str, Any]]] = {
    COMPLETE.name: lambda o: {"result": o.result},
    RETRY.name: lambda o: {"error": o.error, "delay": o.delay},
    FAIL.name: lambda o: {"error": o.error},
}
#: Outcome kind -> (signal, its arguments), built once: this runs for every job.
_SIGNALS = {kind: (getattr(signals, t.signal), _ARGUMENTS[t.name])
            for kind, t in OUTCOMES.items() if t.signal}
