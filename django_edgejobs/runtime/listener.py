"""Wakes the worker when PostgreSQL notifies that jobs were enqueued on its queues."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Sequence

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

        from ..store.postgres import CHANNEL

        params = connections[self.alias].get_connection_params()
        for key in ("cursor_factory", "context", "prepare_threshold", "server_side_binding"):
            params.pop(key, None)
        conn = psycopg.connect(**params, autocommit=True)
        conn.execute(f'LISTEN "{CHANNEL}"')
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
