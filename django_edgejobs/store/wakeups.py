"""Wake the worker when jobs may have arrived: PostgreSQL notifies, SQLite is watched.

Vendor SQL, so it lives with the store: ``LISTEN`` on PostgreSQL, ``PRAGMA data_version`` on
SQLite (named in ``sql_postgres.py`` and ``sql_sqlite.py``). The runtime starts these threads
and knows nothing of either statement."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from django.db import connections

from ..conf import get_settings
from .pooler import behind_transaction_pooler, proxied
from .sql_postgres import LISTEN_SQL
from .sql_sqlite import DATA_VERSION_SQL

logger = logging.getLogger("django_edgejobs.worker")


class Listener:
    """LISTEN on a dedicated connection (outside Django's pool); call ``wake`` per notice.

    The connection is the jobs' database's (``alias``), or ``EDGEJOBS["LISTEN_DATABASE"]``'s
    when set: an alias of the same database that bypasses a transaction pooler. Through such
    a pooler a LISTEN stays on a server connection no client reads, so the notifications are
    lost: without ``LISTEN_DATABASE`` the listener then logs one warning and stops, and the
    worker finds new jobs by polling (system check ``edgejobs.W004`` says so before)."""

    def __init__(self, alias: str, queues: Sequence[str], wake: Callable[[], None],
                 stop: threading.Event):
        self.alias = alias
        self.queues = set(queues)
        self.wake = wake
        self.stop = stop
        self.connected = threading.Event()
        #: Whether a pooler answers for LISTEN_DATABASE as well (found at its connection).
        self.pooled = False

    @property
    def listen_alias(self) -> str:
        """The database alias the LISTEN connection uses."""
        return get_settings().LISTEN_DATABASE or self.alias

    def _connect(self) -> Any:
        import psycopg  # here: SQLite projects may not have it installed

        params = connections[self.listen_alias].get_connection_params()
        for key in ("cursor_factory", "context", "prepare_threshold", "server_side_binding"):
            params.pop(key, None)
        return psycopg.connect(**params, autocommit=True)

    def _open(self) -> Any:
        """The LISTENing connection, or None when notifications on it would be lost: the
        jobs' own database behind a transaction pooler (declared or found, ``pooler.py``)
        and no LISTEN_DATABASE, which is declared to bypass it."""
        conn = self._connect()
        try:
            if get_settings().LISTEN_DATABASE:
                self.pooled = proxied(conn)  # a mistake the start line reports
            elif behind_transaction_pooler(self.alias, conn):
                conn.close()
                return None
            conn.execute(LISTEN_SQL)
        except BaseException:
            with contextlib.suppress(Exception):  # the error raised is the one to report
                conn.close()
            raise
        return conn

    def run(self) -> None:
        backoff = 0.5
        announced = False
        while not self.stop.is_set():
            try:
                conn = self._open()
            except Exception as exc:
                logger.warning("listener cannot connect (%s); retrying in %.1fs", exc, backoff)
                self.stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            if conn is None:
                logger.warning(
                    "wake-ups: no LISTEN: database %r is behind a transaction pooler "
                    "(EDGEJOBS['POOLER'] = %r), which would lose the notifications; this "
                    "worker finds new jobs by polling (--poll-interval, POLL_INTERVAL). Set "
                    "EDGEJOBS['LISTEN_DATABASE'] to an alias that reaches PostgreSQL without "
                    "the pooler (edgejobs.W004).", self.alias, get_settings().POOLER)
                return
            if not announced:
                if self.pooled:
                    logger.warning(
                        "wake-ups: LISTEN on database %r, but a connection pooler answers "
                        "for it too: in transaction pooling its notifications are lost. "
                        "EDGEJOBS['LISTEN_DATABASE'] should reach PostgreSQL directly.",
                        self.listen_alias)
                else:
                    logger.info("wake-ups: LISTEN on database %r", self.listen_alias)
                announced = True
            backoff = 0.5
            self.connected.set()
            self.wake()  # anything enqueued while we were not listening
            try:
                while not self.stop.is_set():
                    for notice in conn.notifies(timeout=0.5):
                        if notice.payload in self.queues:
                            self.wake()
            except Exception as exc:
                if not self.stop.is_set():
                    logger.warning("listener connection lost (%s); reconnecting", exc)
            finally:
                self.connected.clear()
                with contextlib.suppress(Exception):  # closing a broken connection
                    conn.close()


class CommitWatcher:
    """SQLite's stand-in for notifications: ``PRAGMA data_version`` on a connection of its own
    changes when any other connection (another process's ``enqueue``, this worker's own
    writes) commits to the database file. ``run_once`` reads it; the worker polls it every
    ``SQLITE_WATCH_INTERVAL`` seconds and claims when it changed, instead of waiting for
    ``POLL_INTERVAL``. Reading it touches no table: a few microseconds of SQLite's time."""

    def __init__(self, alias: str):
        self.alias = alias
        self._conn: Any = None
        self._version: int | None = None
        self._failing = False

    def run_once(self) -> bool:
        """True when another connection committed since the previous call."""
        import sqlite3

        try:
            if self._conn is None:
                self._conn = self._connect()
            version = self._conn.execute(DATA_VERSION_SQL).fetchone()[0]
        except sqlite3.Error as exc:
            if not self._failing:
                logger.warning("commit watcher cannot read the database (%s); the worker "
                               "polls every POLL_INTERVAL until it can", exc)
            self._failing = True
            self.close()
            return False
        self._failing = False
        changed = self._version is not None and version != self._version
        self._version = version
        return changed

    def _connect(self) -> Any:
        import sqlite3

        params = connections[self.alias].get_connection_params()
        # A read waits for a writer's commit in rollback-journal mode (and, rarely, for a
        # checkpoint in WAL mode): wait a little rather than warn about a busy database.
        return sqlite3.connect(params["database"], uri=bool(params.get("uri")),
                               check_same_thread=False, timeout=1.0)

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
        self._conn = None
        self._version = None
