"""The process supervisor: what one ``runworker`` process runs, and who stops it.

``Process`` owns the signals (first SIGTERM/SIGINT: stop gracefully; second: exit at once),
starts the services beside the worker on threads of their own (the cron scheduler on one,
the maintenance services together on another: one database connection each), runs the worker
(which only claims, runs and completes jobs) in the calling thread, and stops everything in
order: the worker first (its jobs finish or are handed back, its row is marked stopped), then
the services. Without a worker (``--scheduler-only``) it runs the services until a signal.

It also looks after the connections: while it runs, the databases it uses get TCP keepalives
(``store/liveness.py``), and a ``Watchdog`` on a thread of its own watches the threads of the
worker and of the services (``runtime/watchdog.py``)."""

from __future__ import annotations

import logging
import os
import signal
import threading
from typing import Any

from ..conf import get_settings
from ..store import liveness
from .scheduler import Scheduler
from .service import ServiceLoop
from .supervisor import Supervisor
from .watchdog import Watchdog
from .worker import Worker, WorkerStartError

logger = logging.getLogger("django_edgejobs.worker")

#: Seconds a service loop gets to end its pass at shutdown.
SERVICE_STOP_TIMEOUT = 10.0


class Process:
    def __init__(self, worker: Worker | None = None, *, scheduler: bool = True,
                 supervisor: bool = True):
        """``worker``: the worker to run (``None``: services only). ``scheduler``: run the
        cron scheduler (never beside a ``burst`` worker: a burst drains and exits).
        ``supervisor``: run the maintenance services (rescuer, resumer, expirers, pruner)."""
        self.worker = worker
        self.scheduler = Scheduler() if scheduler and not (worker and worker.burst) else None
        self.supervisor = Supervisor() if supervisor else None
        alias = worker.store.alias if worker is not None else "default"
        self.watchdog = Watchdog()
        if worker is not None:
            worker.watchdog = self.watchdog
        self.loops: list[ServiceLoop] = []
        if self.supervisor is not None:
            self.loops.append(ServiceLoop("supervisor", self.supervisor.services(), alias=alias,
                                          watchdog=self.watchdog))
        if self.scheduler is not None:
            self.loops.append(ServiceLoop("scheduler", [self.scheduler],
                                          alias=self.scheduler.store.alias,
                                          watchdog=self.watchdog))
        #: The watchdog's own loop (none with WATCHDOG_TIMEOUT 0); it touches no database.
        self.watchdog_loop = (ServiceLoop("watchdog", [self.watchdog])
                              if self.watchdog.timeout > 0 else None)
        self._aliases = [loop.alias for loop in self.loops] + [alias]
        if worker is not None and worker.store.supports_notify:
            self._aliases.append(get_settings().LISTEN_DATABASE or alias)
        self._stop = threading.Event()
        self._signals: list[int] = []

    def loop(self, name: str) -> ServiceLoop:
        """The loop named ``supervisor`` or ``scheduler``."""
        return next(loop for loop in self.loops if loop.name == name)

    # -- signals ----------------------------------------------------------------------

    def install_signal_handlers(self) -> None:
        """SIGTERM and SIGINT: the first stops gracefully, a second exits at once (status 1).
        Call from the main thread."""
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, signum: int, frame: Any) -> None:
        self._signals.append(signum)
        if len(self._signals) == 1:
            self.request_stop()
        else:
            logger.warning("second signal: exiting at once")
            os._exit(1)

    def request_stop(self) -> None:
        """Stop gracefully: the worker stops claiming and lets running jobs finish within its
        shutdown timeout; then the services stop."""
        self._stop.set()
        if self.worker is not None:
            self.worker.request_stop()

    # -- running ----------------------------------------------------------------------

    def run(self) -> int:
        """Run until stopped (a burst or ``max_jobs`` worker: until it is done). Returns the
        exit status. The worker registers and starts its threads, then the services' loops;
        if a thread cannot be started, what did start is stopped, the worker's row marked
        stopped, and ``WorkerStartError`` raised."""
        restore_options = liveness.add_keepalives(self._aliases)
        loops = self.loops + ([self.watchdog_loop] if self.watchdog_loop is not None else [])
        try:
            if self.worker is not None:
                return self.worker.run(beside=loops)
            for loop in loops:
                try:
                    loop.start()
                except Exception as exc:  # e.g. "can't start new thread"
                    started = sum(1 for each in loops if each.thread is not None)
                    raise WorkerStartError("scheduler", exc, started) from exc
            self._stop.wait()
            return 0
        finally:
            self._stop_services()
            restore_options()

    def _stop_services(self) -> None:
        for loop in self.loops:
            loop.stop()
        for loop in self.loops:
            loop.join(SERVICE_STOP_TIMEOUT)
        if self.watchdog_loop is not None:
            self.watchdog_loop.stop()
            self.watchdog_loop.join(SERVICE_STOP_TIMEOUT)
        if self.worker is None and self.scheduler is not None:
            logger.info("scheduler: stopped")
