"""SQLite: one writer at a time. The claim is a single ``UPDATE … RETURNING`` so its first
statement takes the write lock (no read-then-upgrade, which SQLite refuses under contention).

The statements are named in ``sql_sqlite.py``; this module binds their parameters and runs
them."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from ..models import Job
from ..models.clock import sqlite_now
from . import sql_sqlite as sql
from .base import Finish, Store
from .claim import JobTypes
from .rows import job_values, jobs_from_rows


class SQLiteStore(Store):
    bulk_complete = True
    watches_commits = True

    def db_now(self) -> datetime:
        """SQLite is embedded: its clock is this host's clock, read without a query. The SQL
        here binds it as a parameter (``sqlite_now``) at full precision: SQLite's own clock
        has milliseconds, the times Django writes microseconds (see ``models.clock``)."""
        return datetime.now(UTC)

    def claim(self, owner: str, queues: Sequence[str], limit: int,
              types: JobTypes | None = None) -> list[Job]:
        if limit <= 0 or not queues:
            return []
        token_field = Job._meta.get_field("lease_token")
        queues = list(dict.fromkeys(queues))
        types = types or JobTypes()
        statement = sql.claim_sql(len(queues), len(types.only), len(types.exclude))
        names = [*types.only, *types.exclude]

        def run() -> list[Job]:
            token = uuid.uuid4()
            now = sqlite_now(self.connection)
            per_queue = (p for q in queues for p in (q, now, now, *names, q, limit))
            params = ["processing", owner, token_field.get_db_prep_value(token, self.connection),
                      now, now, *per_queue, limit]
            with transaction.atomic(using=self.alias):
                with self.connection.cursor() as cursor:
                    cursor.execute(statement, params)
                    jobs = jobs_from_rows(self.connection, cursor.fetchall())
                self._claim_events(jobs)
            jobs.sort(key=lambda j: (-j.priority, j.run_at))
            return jobs

        return self.retrying(run)

    def _write_jobs(self, jobs: list[Job], *, conflicts: bool) -> None:
        """One prepared INSERT run for every row (``bulk_create``'s compiler cost more than
        SQLite's work); ``ON CONFLICT DO NOTHING`` skips only rows whose key is taken, where
        ``bulk_create``'s ``INSERT OR IGNORE`` would also skip a row breaking NOT NULL."""
        statement = sql.INSERT_JOB_UNLESS_KEY_TAKEN_SQL if conflicts else sql.INSERT_JOB_SQL
        with self.connection.cursor() as cursor:
            cursor.executemany(statement, job_values(self.connection, jobs))

    def _complete_many(self, outcomes: list[Finish]) -> tuple[set[uuid.UUID], set[uuid.UUID]]:
        """One UPDATE … FROM (VALUES …) for the rows, fenced by their leases, which also says
        which have dependents to settle; one INSERT for their events (the caller holds the
        transaction)."""
        uuid_field = Job._meta.get_field("lease_token")
        prep = uuid_field.get_db_prep_value
        params: list[object] = []
        # SQLite's clock is this host's: the handler's moments are computed here.
        wall, mono = datetime.now(UTC), time.monotonic()
        stamp = self.connection.ops.adapt_datetimefield_value
        for o in outcomes:
            result = None if o.result is None else json.dumps(o.result, allow_nan=False,
                                                               ensure_ascii=False)
            ago = o.ran_ago(mono)
            params += [prep(o.job_id, self.connection), prep(o.lease_token, self.connection),
                       result,
                       None if ago is None else stamp(wall - timedelta(seconds=ago[0])),
                       None if ago is None else stamp(wall - timedelta(seconds=ago[1]))]
        with self.connection.cursor() as cursor:
            now = stamp(wall)
            cursor.execute(sql.complete_many_sql(len(outcomes)),
                           [*params, "completed", now, now, "processing"])
            rows = cursor.fetchall()
        done = {uuid.UUID(row[0]) for row in rows}
        first: dict[uuid.UUID, Finish] = {}
        for o in outcomes:  # the same outcome twice in a batch completes (and logs) once
            first.setdefault(o.job_id, o)
        self._events((job_id, "completed", first[job_id].event_data) for job_id in done)
        return done, {uuid.UUID(row[0]) for row in rows if row[1]}

    def with_open_dependents(self, job_ids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
        """One raw indexed SELECT (a queryset's compiler cost more than SQLite's work, on
        every batch of completions)."""
        ids = list(job_ids)
        if not ids:
            return set()
        prep = Job._meta.get_field("id").get_db_prep_value
        with self.connection.cursor() as cursor:
            cursor.execute(sql.open_dependents_sql(len(ids)),
                           [prep(i, self.connection) for i in ids])
            return {uuid.UUID(row[0]) for row in cursor.fetchall()}

    def _events(self, rows: Iterable[tuple[uuid.UUID, str, dict[str, Any]]],
                at: datetime | None = None) -> None:
        """One INSERT, without building ``JobEvent`` instances (``bulk_create`` cost more than
        the statement); stamped ``at``, else like the model's default, one moment for the
        batch."""
        rows = list(rows)
        if not rows:
            return
        prep = Job._meta.get_field("id").get_db_prep_value
        now = self.connection.ops.adapt_datetimefield_value(at or timezone.now())
        values: list[object] = []
        for job_id, kind, data in rows:
            values += [prep(job_id, self.connection), kind, json.dumps(data), now]
        with self.connection.cursor() as cursor:
            cursor.execute(sql.insert_events_sql(len(rows)), values)
