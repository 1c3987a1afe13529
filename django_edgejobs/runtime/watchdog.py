"""The watchdog: a worker whose connections stop answering recovers, or exits.

A connection can go half-open: the server, or something between, lost it without a word, and
a statement sent on it waits for an answer that never comes, while new connections would
work. TCP keepalives and ``tcp_user_timeout`` (``store/liveness.py``) notice when packets go
unacknowledged, not when something in between acknowledges them and forwards nothing. So the
worker's own threads (claim loop, completer, heartbeat, maintenance, cron) are watched: each
statement and each commit or rollback they send is timed (``watch``). Every server that is
alive answers within ``STATEMENT_TIMEOUT`` (it cancels what runs longer), so a call unanswered
for ``WATCHDOG_TIMEOUT`` is waiting on a dead connection, and the watchdog:

1. interrupts it (``liveness.interrupt``: the socket is shut down): the call fails like any
   lost connection, and the thread's own retry opens a new connection;
2. if that same call is still waiting ``WATCHDOG_TIMEOUT`` later, logs one line and exits
   the process with status 75 (``EXIT_STUCK``), for its process manager to start a new one;
   the jobs it held are reclaimed after ``WORKER_TIMEOUT``, as a dead worker's are.

Only waits on the database count: user code (a handler, a signal receiver, an ``on_timeout``
callback) may take as long as it likes, however slow, without the watchdog stepping in. SQLite
connections are not watched: a file does not go half-open, and a wait for its write lock ends
at its own ``timeout``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connections

from ..conf import get_settings
from ..store import liveness
from .service import Service

logger = logging.getLogger("django_edgejobs.worker")

#: The exit status of a process the watchdog ends (``EX_TEMPFAIL``: try again).
EXIT_STUCK = 75


class _Watched:
    """One watched thread's connection: since when its current call has waited (None: it is
    not waiting on the database), and which call that is."""

    def __init__(self, name: str, conn: Any):
        self.name, self.conn = name, conn
        self.thread = threading.current_thread()
        self.since: float | None = None
        self.calls = 0
        self.interrupted: tuple[int, float] | None = None  # (call, when)

    @contextmanager
    def waiting(self) -> Iterator[None]:
        if self.since is not None:  # nested (a statement inside a timed call)
            yield
            return
        self.calls += 1
        self.since = time.monotonic()
        try:
            yield
        finally:
            self.since = None

    def execute(self, execute: Callable[..., Any], sql: str, params: Any, many: bool,
                context: dict[str, Any]) -> Any:
        """A Django ``execute_wrapper``: times every statement."""
        with self.waiting():
            return execute(sql, params, many, context)

    def around(self, call: Callable[[], Any]) -> Callable[[], Any]:
        def timed() -> Any:
            with self.waiting():
                return call()

        return timed


class Watchdog(Service):
    """Every quarter of ``WATCHDOG_TIMEOUT``: interrupt the calls of watched threads that have
    waited on the database for ``WATCHDOG_TIMEOUT``; exit if one still waits that long after
    its interruption."""

    name = "watchdog"

    def __init__(self, timeout: float | None = None, *,
                 clock: Callable[[], float] = time.monotonic,
                 exit: Callable[[int], Any] = os._exit):
        self._timeout = timeout
        self._clock = clock
        self._exit = exit
        self._watched: list[_Watched] = []
        self._lock = threading.Lock()

    @property
    def timeout(self) -> float:
        return get_settings().WATCHDOG_TIMEOUT if self._timeout is None else self._timeout

    @property
    def interval(self) -> float:
        return max(self.timeout / 4, 0.05)

    # -- the watched threads ----------------------------------------------------------

    def watch(self, name: str, alias: str) -> None:
        """Called on a thread of the worker's own: its connection to ``alias`` gets the
        worker's session timeouts, and (with a ``WATCHDOG_TIMEOUT``) its statements, commits
        and rollbacks are timed from now on. ``forget()`` on the same thread undoes it."""
        liveness.mark_own_thread(alias)
        conn = connections[alias]
        if self.timeout <= 0 or not liveness.can_go_silent(conn):
            return
        watched = _Watched(name, conn)
        conn.execute_wrappers.append(watched.execute)
        # Commit and rollback send no statement through the wrappers: time them here.
        for method in ("_commit", "_rollback"):
            setattr(conn, method, watched.around(getattr(conn, method)))
        with self._lock:
            self._watched.append(watched)

    def forget(self) -> None:
        """The calling thread is watched no more (its connection keeps its timeouts)."""
        liveness.unmark_own_thread()
        me = threading.current_thread()
        with self._lock:
            mine = [w for w in self._watched if w.thread is me]
            self._watched = [w for w in self._watched if w.thread is not me]
        for watched in mine:
            conn = watched.conn
            if watched.execute in conn.execute_wrappers:
                conn.execute_wrappers.remove(watched.execute)
            for name in ("_commit", "_rollback"):
                conn.__dict__.pop(name, None)

    # -- one pass ---------------------------------------------------------------------

    def run_once(self) -> list[str]:
        """Look at each watched call once. Returns the names of the threads whose call it
        interrupted (it does not return when it exits the process)."""
        timeout = self.timeout
        now = self._clock()
        with self._lock:
            self._watched = [w for w in self._watched if w.thread.is_alive()]
            watched = list(self._watched)
        interrupted = []
        for entry in watched:
            since, call = entry.since, entry.calls
            if since is None or now - since < timeout:
                continue
            if entry.interrupted is None or entry.interrupted[0] != call:
                logger.warning("watchdog: %s has waited %.1fs for the database (more than "
                               "WATCHDOG_TIMEOUT, %gs): closing its connection, it goes on "
                               "with a new one", entry.name, now - since, timeout)
                liveness.interrupt(entry.conn)
                entry.interrupted = (call, now)
                interrupted.append(entry.name)
            elif now - entry.interrupted[1] >= timeout:
                logger.critical("watchdog: %s is still stuck %.1fs after its connection was "
                                "closed; exiting with status %d so that the process manager "
                                "starts a new worker (its jobs are reclaimed after "
                                "WORKER_TIMEOUT)", entry.name, now - entry.interrupted[1],
                                EXIT_STUCK)
                self._exit(EXIT_STUCK)
        return interrupted
