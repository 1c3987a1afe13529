"""The cron scheduler: each pass enqueues the due tick of every enabled schedule.

Safe with any number of schedulers at once, on any hosts: a tick becomes at most one job,
because the job and the tick's ``CronTick`` row (UNIQUE on schedule and fire time) are written
in one transaction; the scheduler that loses the race writes nothing. A pass fires only the
latest tick at or before now, so after downtime a schedule gets one catch-up run, not one per
missed tick. Time is the database's clock unless a clock (or ``now``) is injected.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.db import DatabaseError, IntegrityError, transaction

from .. import signals
from ..conf import get_settings
from ..crontimes import CronTimes
from ..models import CronOutcome
from ..services import schedules
from ..services.enqueue import _write
from ..store import get_store
from ..store.cron import CronStore
from .db import reset_connection
from .service import Service

if TYPE_CHECKING:
    from ..models import CronSchedule

logger = logging.getLogger("django_edgejobs.scheduler")

#: Seconds between passes, give or take 20%, drawn afresh for every pass: every tick of a
#: per-second schedule is seen, and the schedulers of many processes neither query at the same
#: instant nor phase-lock on the second. (A jitter drawn once per process did not do the
#: second: two processes whose intervals both came out near 0.5 s kept the same order for
#: minutes, and the one behind won no tick.)
DEFAULT_INTERVAL = 0.5
#: Another scheduler handled the tick (or the schedule changed meanwhile): nothing written.
LOST = "lost"


class Scheduler(Service):
    """The cron service: ``start()`` syncs ``EDGEJOBS["CRON"]``, each pass fires due ticks."""

    name = "scheduler"

    def __init__(self, *, clock: Callable[[], datetime] | None = None,
                 interval: float | None = None, prune_interval: float | None = None,
                 name: str | None = None):
        self.clock = clock
        self.scheduler_id = name or f"{socket.gethostname()}:{os.getpid()}"
        self._interval = interval
        self.prune_interval = prune_interval
        self.store = get_store()
        self.cron = CronStore(self.store)
        self._times: dict[tuple[str, str], CronTimes] = {}
        self._reported: dict[int, datetime] = {}
        self._last_prune: float | None = None

    @property
    def interval(self) -> float:
        """Seconds to the next pass: the ``interval`` given, else a fresh draw around
        ``DEFAULT_INTERVAL`` (read once per pass by the service loop)."""
        if self._interval is not None:
            return self._interval
        return DEFAULT_INTERVAL * random.uniform(0.8, 1.2)

    def start(self) -> None:
        self.sync_declared()
        logger.info("scheduler: running a pass every %s",
                    f"{self._interval:.2f}s" if self._interval is not None
                    else f"{DEFAULT_INTERVAL * 0.8:.2f}-{DEFAULT_INTERVAL * 1.2:.2f}s")

    def now(self) -> datetime:
        return self.clock() if self.clock is not None else self.store.db_now()

    def sync_declared(self) -> dict[str, list[str]]:
        """Create or update the schedules of ``EDGEJOBS["CRON"]`` (see ``sync_declared``).

        A database error is logged, not raised: the stored schedules still run."""
        try:
            done = schedules.sync_declared()
        except DatabaseError:
            logger.exception("cron: could not sync EDGEJOBS['CRON']; running the stored "
                             "schedules")
            reset_connection(self.store.alias)
            return {}
        if done["created"] or done["updated"]:
            logger.info("cron: declared schedules created: %s; updated: %s",
                        ", ".join(done["created"]) or "-", ", ".join(done["updated"]) or "-")
        return done

    # -- one pass ---------------------------------------------------------------------

    def run_once(self, now: datetime | None = None) -> dict[str, int]:
        """Handle the due tick of every enabled schedule; returns how many ticks ended how
        (``enqueued``, ``skipped``, ``error``, ``lost``)."""
        now = now or self.now()
        counts: dict[str, int] = {}
        for schedule in self.cron.enabled_schedules():
            outcome = self.run_schedule(schedule, now)
            if outcome:
                counts[str(outcome)] = counts.get(str(outcome), 0) + 1
        self._prune()
        return counts

    def due_tick(self, schedule: CronSchedule, now: datetime) -> datetime | None:
        """The latest fire time at or before ``now``, unless it is before the schedule's
        ``active_since`` or already handled."""
        key = (schedule.cron, schedule.timezone)
        times = self._times.get(key)
        if times is None:
            times = self._times[key] = CronTimes.parse(*key)
        tick = times.prev(now)
        if tick is None or tick < schedule.active_since:
            return None
        if schedule.last_tick_at is not None and tick <= schedule.last_tick_at:
            return None
        return tick

    def run_schedule(self, schedule: CronSchedule, now: datetime) -> str | None:
        try:
            tick = self.due_tick(schedule, now)
        except ValueError as exc:  # the row was changed behind the API's back
            if self._reported.get(schedule.pk) != schedule.updated_at:
                self._reported[schedule.pk] = schedule.updated_at
                logger.error("cron %s cannot fire: %s", schedule.name, exc)
            return None
        return None if tick is None else self.fire(schedule, tick, now)

    def fire(self, schedule: CronSchedule, tick: datetime, now: datetime | None = None) -> str:
        """Handle one tick in one transaction: enqueue its job, or record why not. Returns
        the outcome, or ``"lost"`` when another scheduler handled this (or a later) tick."""
        try:
            job = schedules.build_cron_job(schedule, run_at=tick)
            error = ""
        except ValueError as exc:  # e.g. no handler for its type in this process
            job, error = None, str(exc)

        def run() -> tuple[str, str]:
            with transaction.atomic(using=self.store.alias):
                outcome, reason = CronOutcome.ERROR, error
                if job is not None:
                    active = (None if schedule.allow_overlap  # locked: trigger_cron waits
                              else self.cron.active_run(schedule, lock=True))
                    outcome, reason = ((CronOutcome.SKIPPED,
                                        f"the previous run {active.id} is {active.status}")
                                       if active else (CronOutcome.ENQUEUED, ""))
                job_id = job.id if job is not None and outcome == CronOutcome.ENQUEUED else None
                if not self.cron.advance(schedule, tick, outcome, job_id):
                    return LOST, ""
                self.cron.record_tick(schedule, tick, outcome, job_id, reason, self.scheduler_id)
                if job_id is not None:
                    _write([job])
                    schedules.send_on_commit(signals.cron_fired, schedule=schedule, job=job,
                                             tick_at=tick, triggered=False, initial=False)
                return outcome, reason

        try:
            outcome, reason = self.store.retrying(run)
        except IntegrityError:  # the tick's row exists: another scheduler won
            return LOST
        self._log(schedule, tick, outcome, reason, job, now)
        return outcome

    def _log(self, schedule: CronSchedule, tick: datetime, outcome: str, reason: str,
             job: Any, now: datetime | None) -> None:
        if outcome == CronOutcome.ERROR:
            logger.error("cron %s: tick %s not enqueued: %s", schedule.name, tick, reason)
        elif outcome == CronOutcome.SKIPPED:
            logger.debug("cron %s: tick %s skipped: %s", schedule.name, tick, reason)
        elif outcome == CronOutcome.ENQUEUED:
            slack = timedelta(seconds=max(5 * (self._interval or DEFAULT_INTERVAL), 5))
            late = now is not None and now - tick > slack
            logger.log(logging.INFO if late else logging.DEBUG,
                       "cron %s: %stick %s enqueued as job %s", schedule.name,
                       "catch-up run for missed " if late else "", tick, job.id)

    def _prune(self) -> None:
        conf = get_settings()
        interval = conf.PRUNE_INTERVAL if self.prune_interval is None else self.prune_interval
        now = time.monotonic()
        if self._last_prune is None or now - self._last_prune >= interval:
            self._last_prune = now
            self.cron.prune_ticks(conf.KEEP_EVENTS_DAYS)
