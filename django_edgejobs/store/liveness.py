"""Connection liveness, the vendor side: what a worker process does to its database connections
so that one that stops answering is noticed (``runtime/watchdog.py`` is the other side).

- ``keepalive_options``: libpq's TCP keepalives, ``tcp_user_timeout`` and ``connect_timeout``
  from ``DEAD_CONNECTION_TIMEOUT``. ``runworker`` adds them to the ``OPTIONS`` of the
  databases it uses, in its own process only (web processes keep their ``DATABASES``), under
  whatever ``OPTIONS`` already sets. The kernel then closes a connection whose peer is gone
  (a dead host, a dropped NAT entry) instead of waiting hours for it.
- ``mark_own_thread``: the worker's own threads (claim loop, completer, heartbeat,
  maintenance, cron; never the handlers' slots) get ``statement_timeout``, ``lock_timeout``
  and ``idle_in_transaction_session_timeout`` on their PostgreSQL connections, so a server
  that is alive answers each of their statements within ``STATEMENT_TIMEOUT``. Not behind a
  transaction pooler: a session setting there stays on a server connection other clients get.
- ``interrupt``: from another thread, make a call that waits on a PostgreSQL connection fail
  now: its socket is shut down, and the wait reads end-of-file.

SQLite has no connection to lose: a file does not go half-open, and a wait for its write lock
ends at the ``timeout`` of ``OPTIONS``. None of this applies to it (``can_go_silent``).
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Iterable
from typing import Any

from django.db import connections
from django.db.backends.signals import connection_created

from ..conf import get_settings
from .pooler import behind_transaction_pooler

logger = logging.getLogger("django_edgejobs.worker")

#: One statement for the three session timeouts (milliseconds as text; "0": none).
SESSION_TIMEOUTS_SQL = ("SELECT set_config('statement_timeout', %s, false), "
                        "set_config('lock_timeout', %s, false), "
                        "set_config('idle_in_transaction_session_timeout', %s, false)")

_own = threading.local()  # .aliases: the aliases whose connections get the session timeouts
_warned_pooler: set[str] = set()


def keepalive_options(seconds: float) -> dict[str, int]:
    """libpq options that give up on a silent server after about ``seconds``: keepalive probes
    from a third of it on, three of them a sixth apart (unanswered: closed before
    ``seconds``), unacknowledged data for ``seconds`` at most, and a connect attempt as long."""
    whole = max(int(seconds), 1)
    return {"keepalives": 1, "keepalives_idle": max(whole // 3, 1),
            "keepalives_interval": max(whole // 6, 1), "keepalives_count": 3,
            "tcp_user_timeout": int(seconds * 1000), "connect_timeout": max(whole, 2)}


def add_keepalives(aliases: Iterable[str]) -> Callable[[], None]:
    """Add ``keepalive_options(DEAD_CONNECTION_TIMEOUT)`` to the ``OPTIONS`` of these
    PostgreSQL databases in this process, under the ones ``OPTIONS`` sets. Connections opened
    after this call get them (the calling thread's are closed so that they reconnect). Returns
    a function that puts the ``OPTIONS`` back."""
    seconds = get_settings().DEAD_CONNECTION_TIMEOUT
    undo: list[tuple[dict[str, Any], Any]] = []
    for alias in dict.fromkeys(aliases):
        conn = connections[alias]
        if seconds <= 0 or conn.vendor != "postgresql":
            continue
        settings_dict = conn.settings_dict  # shared by every thread's connection of the alias
        options = settings_dict.get("OPTIONS") or {}
        undo.append((settings_dict, settings_dict.get("OPTIONS")))
        settings_dict["OPTIONS"] = {**keepalive_options(seconds), **options}
        if not conn.in_atomic_block:
            conn.close()

    def restore() -> None:
        for settings_dict, options in undo:
            settings_dict["OPTIONS"] = options

    return restore


def session_timeouts() -> tuple[str, str, str] | None:
    """The session timeouts of the worker's own connections, in milliseconds; None: none."""
    conf = get_settings()
    values = (conf.STATEMENT_TIMEOUT, conf.LOCK_TIMEOUT, conf.STATEMENT_TIMEOUT)
    if not any(values):
        return None
    return tuple(str(int(v * 1000)) for v in values)  # type: ignore[return-value]


def mark_own_thread(alias: str) -> None:
    """From now on, the calling thread's connections to ``alias`` get the worker's session
    timeouts (at once if one is open). ``unmark_own_thread`` undoes it."""
    aliases = getattr(_own, "aliases", None)
    if aliases is None:
        aliases = _own.aliases = set()
    connection_created.connect(_on_connection_created, dispatch_uid="edgejobs-liveness")
    if alias in aliases:
        return
    aliases.add(alias)
    conn = connections[alias]
    if conn.connection is not None and not conn.in_atomic_block:
        _set_timeouts(conn)


def unmark_own_thread() -> None:
    _own.aliases = set()


def _on_connection_created(sender: Any, connection: Any, **kwargs: Any) -> None:
    if connection.alias in (getattr(_own, "aliases", None) or ()):
        _set_timeouts(connection)


def _set_timeouts(conn: Any) -> None:
    values = session_timeouts()
    if conn.vendor != "postgresql" or values is None:
        return
    with conn.wrap_database_errors:
        pooled = behind_transaction_pooler(conn.alias, conn.connection)
    if pooled:
        if conn.alias not in _warned_pooler:
            _warned_pooler.add(conn.alias)
            logger.info("database %r is behind a transaction pooler: the worker's statement "
                        "and lock timeouts are not set on its connections (a session setting "
                        "would stay with other clients); the watchdog still ends calls that "
                        "go unanswered", conn.alias)
        return
    with conn.cursor() as cursor:
        cursor.execute(SESSION_TIMEOUTS_SQL, list(values))


def can_go_silent(conn: Any) -> bool:
    """Whether Django connection ``conn`` reaches its database over a network."""
    return conn.vendor != "sqlite"


def interrupt(conn: Any) -> bool:
    """Make the call waiting on the PostgreSQL connection ``conn`` (another thread's) fail at
    once. False when it has no open connection to interrupt."""
    raw = conn.connection
    if raw is None or conn.vendor != "postgresql":
        return False
    try:
        fd = raw.pgconn.socket
    except Exception:  # closed meanwhile
        return False
    try:
        sock = socket.socket(fileno=fd)
    except OSError:
        return False
    try:
        sock.shutdown(socket.SHUT_RDWR)  # a wait on the socket reads end-of-file
    except OSError:
        return False
    finally:
        sock.detach()  # the connection still owns the descriptor
    return True
