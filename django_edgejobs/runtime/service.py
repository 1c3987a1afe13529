"""A background service, and the thin loop that runs it.

A service does its work in ``run_once()`` (one pass, callable from anywhere: a test, a cron
job, a management command); ``ServiceLoop`` repeats the passes of one or more services on one
thread and one database connection, each at its own interval, until told to stop. The loop
counts every pass, so code that needs a pass to have happened (a test, a shutdown) waits for
it with ``wait_for_passes`` instead of sleeping."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from django.db import connections

from ..conf import get_settings
from .db import reset_connection

logger = logging.getLogger("django_edgejobs.services")


class Service:
    """One background duty. Subclasses set ``name`` and implement ``run_once``."""

    name = "service"
    #: Seconds from the loop's start to the first pass (0: at once).
    first_delay = 0.0

    @property
    def interval(self) -> float:
        """Seconds between the starts of two passes."""
        raise NotImplementedError

    def run_once(self) -> Any:
        """One pass; returns what it did (a count, a dict of counts)."""
        raise NotImplementedError

    def start(self) -> None:
        """Called on the loop's thread before the first pass (e.g. the scheduler syncs the
        declared schedules). Errors are logged; the passes still run."""

    def close(self) -> None:
        """Called on the loop's thread after the last pass."""


class Watcher(Protocol):
    """What a loop needs of the process's watchdog (``runtime/watchdog.py``)."""

    def watch(self, name: str, alias: str) -> None: ...

    def forget(self) -> None: ...


class SupervisorService(Service):
    """A maintenance service that passes every ``SUPERVISOR_INTERVAL``."""

    @property
    def interval(self) -> float:
        return get_settings().SUPERVISOR_INTERVAL


class FunctionService(Service):
    """A service made of a function: ``FunctionService("heartbeat", 5.0, beat)``."""

    def __init__(self, name: str, interval: float, fn: Callable[[], Any],
                 close: Callable[[], None] | None = None):
        self.name, self._interval, self._fn, self._close = name, interval, fn, close

    @property
    def interval(self) -> float:
        return self._interval

    def run_once(self) -> Any:
        return self._fn()

    def close(self) -> None:
        if self._close is not None:
            self._close()


class ServiceLoop:
    """Runs the passes of ``services`` on one thread until ``stop()``. A pass that raises is
    logged and its connection dropped (the next query opens a new one); the loop goes on.

    ``passes[name]`` counts the finished passes of each service (failed ones too) and
    ``results[name]`` holds the last pass's return value; ``wait_for_passes`` blocks until a
    service has done more passes.

    ``watchdog``: the process's ``Watchdog``, which then watches this loop's thread (its
    statements get the worker's timeouts and are timed)."""

    def __init__(self, name: str, services: Sequence[Service], *, alias: str = "default",
                 watchdog: Watcher | None = None):
        self.name = name
        self.services = list(services)
        self.alias = alias
        self.watchdog = watchdog
        self.passes: dict[str, int] = {s.name: 0 for s in self.services}
        self.results: dict[str, Any] = {}
        self.failures: dict[str, int] = {s.name: 0 for s in self.services}
        self._stop = threading.Event()
        self._changed = threading.Condition()
        self.thread: threading.Thread | None = None

    # -- one step, in the calling thread ----------------------------------------------

    def run_due(self, due: dict[str, float]) -> float:
        """Run every service whose time has come (``due``: service name -> monotonic time of
        its next pass, updated here). Returns the seconds until the next one is due."""
        for service in self.services:
            if self._stop.is_set():
                break
            if time.monotonic() < due.get(service.name, 0.0):
                continue
            started = time.monotonic()
            result: Any = None
            try:
                result = service.run_once()
            except Exception:
                logger.exception("%s: pass failed", service.name)
                reset_connection(self.alias)
                with self._changed:
                    self.failures[service.name] += 1
            due[service.name] = started + service.interval
            with self._changed:
                self.results[service.name] = result
                self.passes[service.name] += 1
                self._changed.notify_all()
        return max(min(due.values(), default=time.monotonic()) - time.monotonic(), 0.0)

    def run(self) -> None:
        """The loop: start hooks, passes until stopped, close hooks; connections closed."""
        if self.watchdog is not None:
            self.watchdog.watch(self.name, self.alias)
        try:
            for service in self.services:
                try:
                    service.start()
                except Exception:
                    logger.exception("%s: start failed", service.name)
                    reset_connection(self.alias)
            due: dict[str, float] = {s.name: time.monotonic() + s.first_delay
                                     for s in self.services if s.first_delay}
            while not self._stop.is_set():
                self._stop.wait(self.run_due(due))
        finally:
            for service in self.services:
                try:
                    service.close()
                except Exception:
                    logger.exception("%s: close failed", service.name)
            if self.watchdog is not None:
                self.watchdog.forget()
            connections.close_all()

    # -- as a thread ------------------------------------------------------------------

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name=f"edgejobs-{self.name}", daemon=True)
        thread.start()  # may raise (no thread to be had): then this loop has no thread
        self.thread = thread
        return thread

    def stop(self) -> None:
        self._stop.set()
        with self._changed:
            self._changed.notify_all()

    def join(self, timeout: float | None = None) -> None:
        if self.thread is not None:
            self.thread.join(timeout)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def wait_for_passes(self, name: str, count: int, timeout: float) -> bool:
        """Block until service ``name`` has done at least ``count`` passes in all; False on
        timeout or when the loop stops first."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self.passes[name] < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._stop.is_set():
                    return self.passes[name] >= count
                self._changed.wait(remaining)
            return True
