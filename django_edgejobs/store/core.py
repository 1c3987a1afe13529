"""What every store verb stands on: the connection, ``retrying`` (transient lock errors), the
database's clock, the events writer and the (no-op) notification; and the values the verbs
pass around: ``Finish`` (one attempt's outcome) and ``append_error``.

``StoreCore`` is the base of each verb mixin; ``base.Store`` assembles them."""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from django.db import DatabaseError, connections
from django.utils import timezone

from ..models import Job, JobEvent
from ..models.clock import Now
from . import sql_portable as sql

logger = logging.getLogger("django_edgejobs.store")

T = TypeVar("T")

#: Errors worth retrying as they are: lock contention and serialisation, never data errors.
TRANSIENT_MARKERS = (
    "database is locked",
    "database table is locked",
    "deadlock detected",
    "could not serialize access",
    "lock not available",
    "could not obtain lock",
)


#: Errors of a connection whose session state is gone or belongs to another client: a pooler
#: in transaction mode hands each transaction any server connection, so a statement prepared on
#: one is missing (or another's) on the next. A new connection and a retry cure them.
SESSION_STATE_MARKERS = (
    "prepared statement",
    "current transaction is aborted",
    "portal",
)


def lost_session_state(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, DatabaseError) and any(m in text for m in SESSION_STATE_MARKERS)


def is_transient(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, DatabaseError) and any(m in text for m in TRANSIENT_MARKERS)


@dataclass
class Finish:
    """The outcome of one attempt, to be written under the attempt's lease.

    ``kind``: completed, retry (back to pending after ``delay`` s), failed, released (handed
    back without using the attempt, e.g. at shutdown; due again after ``delay`` s, with
    ``error`` as last_error when set), waiting (suspended until ``until`` or
    until ``wait_token`` is resolved, without using the attempt).
    """

    job_id: uuid.UUID
    lease_token: uuid.UUID
    kind: str
    result: Any = None
    error: str = ""
    traceback: str = ""
    attempt: int = 0
    delay: float = 0.0
    error_history: list[dict[str, Any]] = field(default_factory=list)
    until: datetime | None = None
    wait_token: str = ""
    steps: dict[str, Any] | None = None
    #: Further events of the attempt (e.g. ``prolonged``), written before the outcome's own.
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    event_data: dict[str, Any] = field(default_factory=dict)
    #: When the handler began and ended, on this process's ``time.monotonic()`` clock: a
    #: completion, retry or failure then stamps ``started_at`` and ``completed_at`` with those
    #: moments (on the database's clock, never before the claim) instead of the claim's and
    #: the write's, so a job's run time leaves out the time it sat in the worker's buffer and
    #: in the completer's queue. ``None`` (an outcome not run here): the claim and the write.
    ran: tuple[float, float] | None = None

    def ran_ago(self, now: float | None = None) -> tuple[float, float] | None:
        """Seconds from the handler's begin and end to ``now`` (``time.monotonic()``)."""
        if self.ran is None:
            return None
        now = time.monotonic() if now is None else now
        return max(now - self.ran[0], 0.0), max(now - self.ran[1], 0.0)


def append_error(history: list[dict[str, Any]] | None, attempt: int, error: str, tb: str,
              keep: int | None = None) -> list[dict[str, Any]]:
    from ..conf import get_settings

    keep = get_settings().MAX_ERROR_HISTORY if keep is None else keep
    entry = {"attempt": attempt, "error": error, "traceback": tb,
             "at": timezone.now().isoformat()}
    return [*(history or []), entry][-keep:] if keep > 0 else []


class StoreCore:
    """One database alias, and the helpers every verb uses."""

    #: Whether enqueue sends a notification that wakes listening workers.
    supports_notify = False
    #: Another connection's commit can be seen without a query of the job table (SQLite's
    #: ``PRAGMA data_version``: the worker's ``CommitWatcher``).
    watches_commits = False

    def __init__(self, alias: str):
        self.alias = alias

    @property
    def connection(self):
        return connections[self.alias]

    def retrying(self, fn: Callable[[], T], *, attempts: int = 8) -> T:
        """Run ``fn`` (a whole transaction), retrying transient lock errors with backoff.

        Inside an outer atomic block a retry is impossible; the error propagates.
        """
        delay = 0.01
        for attempt in range(attempts):
            try:
                return fn()
            except DatabaseError as exc:
                last = attempt == attempts - 1
                if not is_transient(exc) or self.connection.in_atomic_block or last:
                    raise
                logger.debug("transient database error (%s); retrying in %.3fs", exc, delay)
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 1.0)
        raise AssertionError("unreachable")

    def db_now(self) -> datetime:
        """The database's clock, as the package's ``Now()`` reads it: the statement's moment at
        full precision (``SELECT CURRENT_TIMESTAMP`` is whole seconds on SQLite and the
        transaction's start on PostgreSQL, so moments counted from it came out early)."""
        compiler = Job.objects.using(self.alias).none().query.get_compiler(self.alias)
        expression, params = compiler.compile(Now())
        with self.connection.cursor() as cursor:
            cursor.execute(sql.select_sql(expression), list(params))
            value = cursor.fetchone()[0]
        if isinstance(value, str):
            from django.utils.dateparse import parse_datetime

            parsed = parse_datetime(value)
            assert parsed is not None
            value = parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed, UTC)
        return value

    now_sql = "CURRENT_TIMESTAMP"

    def _events(self, rows: Iterable[tuple[uuid.UUID, str, dict[str, Any]]],
                at: datetime | None = None) -> None:
        """Write events (``at``: their moment, default now)."""
        moment = {} if at is None else {"created_at": at}
        JobEvent.objects.using(self.alias).bulk_create(
            [JobEvent(job_id=job_id, type=kind, data=data, **moment)
             for job_id, kind, data in rows]
        )

    def notify(self, queues: Iterable[str]) -> None:
        """Wake workers of these queues once the current transaction commits (no-op here)."""
