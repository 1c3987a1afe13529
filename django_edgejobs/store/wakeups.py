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

from .sql_postgres import LISTEN_SQL
from .sql_sqlite import DATA_VERSION_SQL

logger = logging.getLogger("django_edgejobs.worker")


class Listener:
    """LISTEN on a dedicated connection (outside Django's pool); call ``wake`` per notice."""

    def __init__(self, alias: str, queues: Sequence[str], wake: Callable[[], None],
                 stop: threading.Event):
        self.alias = alias
        self.queues = set(queues)
        self.wake = wake
        self.stop = stop
        self.connected = threading.Event()

    def _connect(self):
        import psycopg
        from django.db import connections

        params = connections[self.alias].get_connection_params()
        for key in ("cursor_factory", "context", "prepare_threshold", "server_side_binding"):
            params.pop(key, None)
        conn = psycopg.connect(**params, autocommit=True)
        conn.execute(LISTEN_SQL)
        return conn

    def run(self) -> None:
        backoff = 0.5
        while not self.stop.is_set():
            try:
                conn = self._connect()
            except Exception as exc:
                logger.warning("listener cannot connect (%s); retrying in %.1fs", exc, backoff)
                self.stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
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

        from django.db import connections

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
