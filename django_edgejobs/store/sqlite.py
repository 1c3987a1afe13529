"""SQLite: one writer at a time. The claim is a single ``UPDATE … RETURNING`` so its first
statement takes the write lock (no read-then-upgrade, which SQLite refuses under contention)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from ..models import Job, JobEvent
from ..models.clock import sqlite_now
from .base import Finish, Store
from .rows import job_columns, job_values, jobs_from_rows


class SQLiteStore(Store):
    bulk_complete = True
    watches_commits = True

    def db_now(self) -> datetime:
        """SQLite is embedded: its clock is this host's clock, read without a query. The SQL
        here binds it as a parameter (``sqlite_now``) at full precision: SQLite's own clock
        has milliseconds, the times Django writes microseconds (see ``models.clock``)."""
        return datetime.now(UTC)

    def claim(self, owner: str, queues: Sequence[str], limit: int) -> list[Job]:
        if limit <= 0 or not queues:
            return []
        table = Job._meta.db_table
        token_field = Job._meta.get_field("lease_token")
        queues = list(dict.fromkeys(queues))
        # The claim index is ordered within a queue: for several queues, take the best
        # ``limit`` of each by index and then the best of those, instead of letting SQLite
        # read and sort every due job of those queues. 'pending' is written as a literal so
        # the planner can use the partial index.
        # ``+run_at``: not a range the index may use. With statistics saying the jobs share a
        # queue and a priority (ANALYZE after one enqueue_many), SQLite preferred a skip-scan
        # on run_at and sorted every due job; the claim index's order is what stops the scan.
        due = ("status = 'pending' AND +run_at <= %s "
               "AND (expires_at IS NULL OR expires_at > %s)")
        per_queue = (f'SELECT * FROM (SELECT id, priority, run_at FROM "{table}" '
                     f"WHERE queue = %s AND {due} ORDER BY priority DESC, run_at LIMIT %s)")
        picked = ("SELECT id FROM (" + " UNION ALL ".join([per_queue] * len(queues))
                  + ") ORDER BY priority DESC, run_at LIMIT %s")
        sql = (
            f'UPDATE "{table}" SET status = %s, attempts = attempts + 1, lease_owner = %s, '
            f"lease_token = %s, started_at = %s, updated_at = %s "
            f"WHERE id IN ({picked}) RETURNING {job_columns()}"
        )

        def run() -> list[Job]:
            token = uuid.uuid4()
            now = sqlite_now(self.connection)
            params = ["processing", owner, token_field.get_db_prep_value(token, self.connection),
                      now, now, *(p for q in queues for p in (q, now, now, limit)), limit]
            with transaction.atomic(using=self.alias):
                with self.connection.cursor() as cursor:
                    cursor.execute(sql, params)
                    jobs = jobs_from_rows(self.connection, cursor.fetchall())
                self._claim_events(jobs)
            jobs.sort(key=lambda j: (-j.priority, j.run_at))
            return jobs

        return self.retrying(run)

    def _write_jobs(self, jobs: list[Job], *, conflicts: bool) -> None:
        """One prepared INSERT run for every row (``bulk_create``'s compiler cost more than
        SQLite's work); ``ON CONFLICT DO NOTHING`` skips only rows whose key is taken, where
        ``bulk_create``'s ``INSERT OR IGNORE`` would also skip a row breaking NOT NULL."""
        marks = ", ".join(["%s"] * len(Job._meta.concrete_fields))
        conflict = " ON CONFLICT DO NOTHING" if conflicts else ""
        with self.connection.cursor() as cursor:
            cursor.executemany(f'INSERT INTO "{Job._meta.db_table}" ({job_columns()}) '
                               f"VALUES ({marks}){conflict}", job_values(self.connection, jobs))

    def _complete_many(self, outcomes: list[Finish]) -> set[uuid.UUID]:
        """One UPDATE … FROM (VALUES …) for the rows, fenced by their leases; one INSERT for
        their events (the caller holds the transaction)."""
        table = Job._meta.db_table
        uuid_field = Job._meta.get_field("lease_token")
        prep = uuid_field.get_db_prep_value
        params: list[object] = []
        for o in outcomes:
            result = None if o.result is None else json.dumps(o.result, allow_nan=False,
                                                               ensure_ascii=False)
            params += [prep(o.job_id, self.connection), prep(o.lease_token, self.connection),
                       result]
        rows = ", ".join(["(%s, %s, %s)"] * len(outcomes))
        sql = (
            f"WITH v (id, token, result) AS (VALUES {rows}) "
            f'UPDATE "{table}" SET status = %s, result = v.result, '
            "completed_at = %s, updated_at = %s, "
            "lease_token = NULL, lease_owner = '' FROM v "
            f'WHERE "{table}".id = v.id AND "{table}".lease_token = v.token '
            f'AND "{table}".status = %s RETURNING "{table}".id'
        )
        with self.connection.cursor() as cursor:
            now = sqlite_now(self.connection)
            cursor.execute(sql, [*params, "completed", now, now, "processing"])
            done = {uuid.UUID(row[0]) for row in cursor.fetchall()}
        first: dict[uuid.UUID, Finish] = {}
        for o in outcomes:  # the same outcome twice in a batch completes (and logs) once
            first.setdefault(o.job_id, o)
        self._events((job_id, "completed", first[job_id].event_data) for job_id in done)
        return done

    def _events(self, rows: Iterable[tuple[uuid.UUID, str, dict[str, Any]]]) -> None:
        """One INSERT, without building ``JobEvent`` instances (``bulk_create`` cost more than
        the statement); stamped like the model's default, one moment for the batch."""
        rows = list(rows)
        if not rows:
            return
        prep = Job._meta.get_field("id").get_db_prep_value
        now = self.connection.ops.adapt_datetimefield_value(timezone.now())
        values: list[object] = []
        for job_id, kind, data in rows:
            values += [prep(job_id, self.connection), kind, json.dumps(data), now]
        marks = ", ".join(["(%s, %s, %s, %s)"] * len(rows))
        with self.connection.cursor() as cursor:
            cursor.execute(f'INSERT INTO "{JobEvent._meta.db_table}" (job_id, type, data, '
                           f"created_at) VALUES {marks}", values)

    def _histogram_rows(self, start: datetime, end: datetime,
                        size: int) -> Iterable[tuple[str, int, int]]:
        # Native strftime, not Django's Python date functions (called once per row).
        table = Job._meta.db_table
        ops = self.connection.ops
        sql = (f"SELECT status, (CAST(STRFTIME('%%s', completed_at) AS INTEGER) - %s) / %s, "
               f'COUNT(*) FROM "{table}" WHERE status IN (%s, %s) AND completed_at >= %s '
               f"AND completed_at < %s GROUP BY 1, 2")
        params = [int(start.timestamp()), int(size), "completed", "failed",
                  ops.adapt_datetimefield_value(start), ops.adapt_datetimefield_value(end)]
        with self.connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()
