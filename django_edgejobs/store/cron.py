"""Storage verbs of the cron scheduler: read the enabled schedules, advance a schedule to a
tick, record the tick, note a run that is not a tick's, prune old ticks.

Portable ORM only. The once-per-tick guarantee is the UNIQUE (schedule, tick_at) constraint
of ``CronTick``; ``advance`` in front of it is a compare-and-set on the schedule row that makes
losing schedulers give up early (on PostgreSQL it also waits for the winner's row lock, so the
loser never even reaches the constraint)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from django.db.models import BooleanField, ExpressionWrapper, F, Q
from django.db.models.expressions import RawSQL

from ..models import CronOutcome, CronSchedule, CronTick, Job
from ..models.clock import Now
from ..models.job import ACTIVE_STATUSES
from .base import Store


def cron_tag(name: str) -> str:
    """The tag every job of schedule ``name`` carries."""
    return f"cron:{name}"


class CronStore:
    def __init__(self, store: Store):
        self.store = store
        self.alias = store.alias

    def enabled_schedules(self) -> list[CronSchedule]:
        return list(CronSchedule.objects.using(self.alias).filter(enabled=True).order_by("id"))

    def lock(self, schedule: CronSchedule) -> bool:
        """Hold the schedule row's write lock until the transaction ends; False if the row is
        gone. A no-op UPDATE, so it locks on every database (SQLite: the write lock, at once,
        with no read-then-upgrade). Taken before an overlap check, it makes the check and the
        enqueue after it one step: two runs of a schedule (ticks or triggers) cannot both
        find no active run."""
        return bool(CronSchedule.objects.using(self.alias).filter(pk=schedule.pk)
                    .update(updated_at=F("updated_at")))

    def active_run(self, schedule: CronSchedule, *, lock: bool = False) -> Job | None:
        """A pending, waiting or processing job of this schedule (a tick's or a trigger's).

        ``lock``: take the schedule row's lock first (see ``lock``)."""
        if lock:
            self.lock(schedule)
        sql, params = self.store.tag_condition([cron_tag(schedule.name)], "all")
        return (Job.objects.using(self.alias)
                .filter(type=schedule.type, status__in=ACTIVE_STATUSES)
                .filter(ExpressionWrapper(RawSQL(sql, params), output_field=BooleanField()))
                .only("id", "status").first())

    def advance(self, schedule: CronSchedule, tick: datetime, outcome: str,
                job_id: uuid.UUID | None = None) -> bool:
        """Move the schedule's last tick forward to ``tick``, if it is still enabled, the tick
        is not before its ``active_since`` and no scheduler handled this or a later tick."""
        changes: dict[str, object] = {"last_tick_at": tick, "last_outcome": outcome}
        if job_id is not None:
            changes.update(last_job_id=job_id, last_run_at=Now())
        return bool(
            CronSchedule.objects.using(self.alias)
            .filter(pk=schedule.pk, enabled=True, active_since__lte=tick)
            .filter(Q(last_tick_at__isnull=True) | Q(last_tick_at__lt=tick))
            .update(**changes)
        )

    def record_tick(self, schedule: CronSchedule, tick: datetime, outcome: str,
                    job_id: uuid.UUID | None = None, reason: str = "",
                    fired_by: str = "") -> CronTick:
        """Insert the tick's row. Raises IntegrityError when the tick was already recorded."""
        return CronTick.objects.using(self.alias).create(
            schedule_id=schedule.pk, tick_at=tick, outcome=outcome, job_id=job_id, reason=reason,
            fired_by=fired_by)

    def note_run(self, schedule: CronSchedule, job_id: uuid.UUID | None,
                 outcome: str = CronOutcome.TRIGGERED) -> None:
        """Note a run that is not a tick's (``trigger_cron``, ``run_on_init``) on the row:
        its job and outcome (no job: it was skipped, its previous run still active)."""
        changes: dict[str, object] = {"last_outcome": outcome}
        if job_id is not None:
            changes.update(last_job_id=job_id, last_run_at=Now())
        CronSchedule.objects.using(self.alias).filter(pk=schedule.pk).update(**changes)

    def prune_ticks(self, days: float, batch: int = 5000) -> int:
        """Delete ticks older than ``days``, except each schedule's latest (which the unique
        constraint must keep guarding)."""
        cutoff = Now() - timedelta(days=days)
        total = 0
        while True:
            ids = list(CronTick.objects.using(self.alias).filter(tick_at__lt=cutoff)
                       .exclude(tick_at=F("schedule__last_tick_at"))
                       .values_list("id", flat=True)[:batch])
            if not ids:
                return total
            total += CronTick.objects.using(self.alias).filter(id__in=ids).delete()[0]
