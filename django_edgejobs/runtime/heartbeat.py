"""The heartbeat: keeps the worker's row fresh and notices leases taken away from it."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable

from ..conf import get_settings
from ..store import get_store
from .service import Service

logger = logging.getLogger("django_edgejobs.worker")


class Heartbeat(Service):
    """Every ``HEARTBEAT_INTERVAL``: the worker's row says it is alive, and the leases of its
    in-flight jobs are checked (a lost one settles its job)."""

    name = "heartbeat"

    def __init__(self, worker_id: str, register: Callable[[], None],
                 leases: Callable[[], dict[uuid.UUID, uuid.UUID]],
                 on_lost: Callable[[set[uuid.UUID]], None]):
        self.worker_id = worker_id
        self._register = register
        self._leases = leases
        self._on_lost = on_lost
        self._done = 0
        self._lock = threading.Lock()

    @property
    def interval(self) -> float:
        return get_settings().HEARTBEAT_INTERVAL

    def count_done(self, n: int = 1) -> None:
        with self._lock:
            self._done += n

    def run_once(self) -> set[uuid.UUID]:
        """Beat once; return the ids of in-flight jobs whose lease this worker lost."""
        store = get_store()
        with self._lock:
            done, self._done = self._done, 0
        try:
            if not store.heartbeat(self.worker_id, done):
                logger.warning("worker %s: row missing or marked stopped; registering again",
                               self.worker_id)
                self._register()
            leases = self._leases()
            lost = set(leases) - store.held_leases(leases)
        except Exception:
            with self._lock:
                self._done += done
            raise
        if lost:
            logger.warning("worker %s lost the lease of %d job(s): %s", self.worker_id,
                           len(lost), ", ".join(map(str, sorted(lost))))
            self._on_lost(lost)
        return lost
