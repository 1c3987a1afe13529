"""Connection poolers between the app and PostgreSQL: may a connection keep session state?

A pooler in transaction mode (PgBouncer's ``pool_mode = transaction``, the usual production
setting) gives each transaction whichever server connection is free, so nothing may outlive a
transaction: a statement prepared on one server connection is executed on another (``does not
exist``, ``already exists``, or another client's statement under the same name), a LISTEN is
left on a server connection that no client reads, a session advisory lock is held for
whoever comes next. ``EDGEJOBS["POOLER"]`` says what sits in between; ``"auto"`` (the default)
finds out, once per process and database:

A pooler answers a client's startup itself, with a backend key of its own (it needs one to
route cancel requests), so the process id in that key is not the ``pg_backend_pid()`` of the
server connection that runs the client's statements. PgBouncer, Odyssey, PgCat and Supavisor
do so; a TCP proxy (HAProxy, an SSH tunnel) passes the server's key through and is rightly
taken for a direct connection. Whether a pooler found that way pools transactions or sessions
cannot be seen from a client, so it is taken for a transaction pooler: the safe guess, which
costs a session pooler its prepared statements and, without ``LISTEN_DATABASE``, its
wake-ups, until ``POOLER`` says ``"session"``.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from django.db import connections

from ..conf import get_settings
from .sql_postgres import BACKEND_PID_SQL

logger = logging.getLogger("django_edgejobs.store")

#: (alias, host, port, database) -> whether a pooler answers for that database.
_found: dict[tuple[str, str, str, str], bool] = {}
_lock = threading.Lock()


def proxied(raw: Any) -> bool:
    """Whether the psycopg connection ``raw`` reaches PostgreSQL through a pooler: the backend
    key it got at startup names another process than the one running its statements. One
    statement, never prepared; inside a transaction it is part of it and changes nothing."""
    import psycopg  # here: this module serves SQLite projects too, which may lack it

    with psycopg.Cursor(raw) as cursor:
        cursor.execute(BACKEND_PID_SQL, prepare=False)
        row = cursor.fetchone()
    return row is None or row[0] != raw.info.backend_pid


def _key(alias: str) -> tuple[str, str, str, str]:
    s = connections[alias].settings_dict
    return alias, str(s.get("HOST") or ""), str(s.get("PORT") or ""), str(s.get("NAME") or "")


def behind_transaction_pooler(alias: str, raw: Any) -> bool:
    """Whether connections of the database ``alias`` may keep no session state. ``raw``: an
    open psycopg connection of that database, asked once per process when ``POOLER`` is
    ``"auto"`` (later calls answer from memory)."""
    mode = get_settings().POOLER
    if mode != "auto":
        return mode == "transaction"
    key = _key(alias)
    found = _found.get(key)
    if found is None:
        found = proxied(raw)
        with _lock:
            if key not in _found and found:
                logger.info("database %r: a connection pooler answers for PostgreSQL "
                            "(EDGEJOBS['POOLER'] = 'auto'); taken for transaction pooling: "
                            "no prepared statements, no LISTEN through it. Say 'session' if "
                            "it pools sessions.", alias)
            _found[key] = found
    return found


def forget() -> None:
    """Find out again at the next use (tests; a process whose databases changed)."""
    with _lock:
        _found.clear()
