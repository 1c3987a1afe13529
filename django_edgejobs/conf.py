"""The one reader of ``settings.EDGEJOBS``: a typed, lazily built, cached settings object."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field, fields
from typing import Any

from django.conf import settings as django_settings
from django.core.signals import setting_changed
from django.dispatch import receiver

#: The most handler threads one worker process may run (``CONCURRENCY``, ``--concurrency``).
#: Each thread that touches the database holds a connection, and threads share one interpreter
#: lock: past a few hundred, more worker processes serve better than more threads in one.
MAX_CONCURRENCY = 1024

#: What ``EDGEJOBS["POOLER"]`` may say sits between the app and PostgreSQL.
POOLER_MODES = ("auto", "none", "session", "transaction")


@dataclass(frozen=True)
class EdgeJobsSettings:
    QUEUES: tuple[str, ...] = ("default",)
    CONCURRENCY: int = 4  # 1..MAX_CONCURRENCY
    BATCH_SIZE: int = 0  # 0: adaptive (the concurrency at first, up to 50 for short jobs)
    POLL_INTERVAL: float = 1.0
    HEARTBEAT_INTERVAL: float = 5.0
    WORKER_TIMEOUT: float = 30.0
    SHUTDOWN_TIMEOUT: float = 30.0
    MAX_PAYLOAD_BYTES: int = 1_000_000
    DEFAULT_MAX_ATTEMPTS: int = 3
    DEFAULT_RETRY_DELAY: float = 60
    DEFAULT_RETRY_BACKOFF: bool = True
    DEFAULT_RETRY_DELAY_MAX: float = 3600
    KEEP_FINISHED_DAYS: float = 30
    KEEP_EVENTS_DAYS: float = 30
    SUPERVISOR_INTERVAL: float = 1.0
    PRUNE_INTERVAL: float = 3600
    TOKEN_CALLBACK_MAX_BYTES: int = 65_536
    MAX_ERROR_HISTORY: int = 25
    #: Seconds from a job's creation during which a worker without a handler for its type
    #: hands it back (no attempt used) for a worker that has one; after it, the job fails.
    UNKNOWN_TYPE_GRACE: float = 600
    CRON: dict[str, Any] = field(default_factory=dict)
    REDACT_KEYS: tuple[str, ...] = ("password", "token", "secret", "authorization", "api_key")
    #: PostgreSQL: prepare the hot-path statements (enqueue, claim, completion) on the server,
    #: where the connection keeps them: never behind a transaction pooler (``POOLER``).
    PREPARED_STATEMENTS: bool = True
    #: PostgreSQL: what sits between the app and the server (one of ``POOLER_MODES``).
    #: "transaction": a pooler that hands each transaction any server connection, so nothing
    #: may outlive a transaction (no prepared statements; LISTEN only on LISTEN_DATABASE);
    #: "session" or "none": connections keep their session; "auto": find out, once per
    #: process and database, and take a pooler found for a transaction pooler.
    POOLER: str = "auto"
    #: PostgreSQL: the database alias of the worker's LISTEN connection, one that reaches the
    #: jobs' database without a transaction pooler. None: the jobs' own alias.
    LISTEN_DATABASE: str | None = None
    #: SQLite: seconds between checks of whether another connection committed (an enqueue
    #: from another process), which wake an idle worker before POLL_INTERVAL; 0 turns it off.
    SQLITE_WATCH_INTERVAL: float = 0.02
    #: Connection liveness (``store/liveness.py``, ``runtime/watchdog.py``); 0 turns each off.
    #: PostgreSQL: seconds one statement of the worker's own threads (claim, outcomes,
    #: heartbeat, maintenance, cron; not the handlers') may run, or its transaction idle,
    #: before the server ends it...
    STATEMENT_TIMEOUT: float = 10.0
    #: ...and may wait for a lock.
    LOCK_TIMEOUT: float = 5.0
    #: PostgreSQL: seconds after which the kernel gives up on a connection of a runworker
    #: process whose server stopped answering (TCP keepalives, tcp_user_timeout,
    #: connect_timeout), unless DATABASES' OPTIONS set them.
    DEAD_CONNECTION_TIMEOUT: float = 15.0
    #: Seconds a statement or commit of the worker's own threads may go unanswered before the
    #: watchdog closes its connection (the thread retries on a new one); still stuck as long
    #: again, the process exits with status 75 for its process manager to restart it.
    WATCHDOG_TIMEOUT: float = 15.0
    #: OpenTelemetry spans and metrics when ``opentelemetry-api`` is installed; False: none.
    TRACING: bool = True


KNOWN_KEYS = frozenset(f.name for f in fields(EdgeJobsSettings))

_cached: EdgeJobsSettings | None = None


def unknown_keys(raw: dict[str, Any]) -> list[tuple[str, str | None]]:
    """Unknown keys of a raw EDGEJOBS dict, each with its closest known key (or None)."""
    out = []
    for key in raw:
        if key not in KNOWN_KEYS:
            close = difflib.get_close_matches(str(key), sorted(KNOWN_KEYS), n=1)
            out.append((key, close[0] if close else None))
    return out


def _build(raw: dict[str, Any]) -> EdgeJobsSettings:
    known = {k: v for k, v in raw.items() if k in KNOWN_KEYS}
    for name in ("QUEUES", "REDACT_KEYS"):
        if name in known:
            known[name] = tuple(known[name])
    return EdgeJobsSettings(**known)


def get_settings() -> EdgeJobsSettings:
    """The current settings; unknown keys are reported by the system check, not here."""
    global _cached
    if _cached is None:
        raw = getattr(django_settings, "EDGEJOBS", None) or {}
        _cached = _build(dict(raw))
    return _cached


@receiver(setting_changed)
def _reset(*, setting: str, **kwargs: Any) -> None:
    global _cached
    if setting == "EDGEJOBS":
        _cached = None
