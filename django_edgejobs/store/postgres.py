"""PostgreSQL: claim with ``FOR UPDATE SKIP LOCKED``, enqueue in one statement, wake workers
with LISTEN/NOTIFY (the notification is delivered when the enqueueing transaction commits)."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime

from django.db import transaction

from ..models import Job, JobEvent
from .base import Finish, Store

CHANNEL = "django_edgejobs"
#: Rows per INSERT statement (PostgreSQL allows 65,535 parameters per statement).
INSERT_CHUNK = 2000


class PostgresStore(Store):
    supports_notify = True
    bulk_complete = bulk_complete_is_atomic = True
    now_sql = "statement_timestamp()"

    def notify(self, queues: Iterable[str]) -> None:
        queues = sorted(set(queues))
        if not queues:
            return
        with self.connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_notify(%s, q) FROM unnest(%s::text[]) AS q", [CHANNEL, queues]
            )

    def _insert_rows(self, jobs: list[Job], *, conflicts: bool) -> set[uuid.UUID]:
        """One statement per chunk: the rows, their ``added`` events and the notification.

        A delayed job's ``run_at`` is computed in SQL from the database's clock."""
        inserted: set[uuid.UUID] = set()
        if not jobs:
            return inserted
        fields = list(Job._meta.concrete_fields)
        columns = ", ".join(f'"{f.column}"' for f in fields)
        marks = ", ".join(
            "COALESCE(%s, statement_timestamp() + %s * interval '1 second')"
            if f.attname == "run_at" else
            "COALESCE(%s::timestamptz, statement_timestamp() + %s::float8 * interval '1 second')"
            if f.attname == "expires_at" else "%s" for f in fields
        )
        job_table, event_table = Job._meta.db_table, JobEvent._meta.db_table
        conflict = "ON CONFLICT DO NOTHING " if conflicts else ""
        chunks = [jobs[i:i + INSERT_CHUNK] for i in range(0, len(jobs), INSERT_CHUNK)]
        # One statement is atomic on its own; several need a transaction around them.
        block = (transaction.atomic(using=self.alias, savepoint=False) if len(chunks) > 1
                 else contextlib.nullcontext())
        with block:
            for chunk in chunks:
                by_id = {job.id: job for job in chunk}
                params: list[object] = []
                for job in chunk:
                    delay = getattr(job, "enqueue_delay", None)
                    expires_in = getattr(job, "enqueue_expires", None)
                    for f in fields:
                        if f.attname == "run_at":
                            params += [None, delay] if delay is not None else [
                                f.get_db_prep_save(job.run_at, self.connection), 0]
                        elif f.attname == "expires_at":  # NULL stays NULL: NULL * interval
                            params += [None, expires_in] if expires_in is not None else [
                                f.get_db_prep_save(job.expires_at, self.connection), None]
                        else:
                            params.append(f.get_db_prep_save(f.pre_save(job, True),
                                                             self.connection))
                sql = (
                    f'WITH j AS (INSERT INTO "{job_table}" ({columns}) VALUES '
                    + ", ".join([f"({marks})"] * len(chunk))
                    + f" {conflict}RETURNING id, queue, run_at, expires_at), "
                    f'e AS (INSERT INTO "{event_table}" (job_id, type, data, created_at) '
                    "SELECT id, 'added', '{}'::jsonb, statement_timestamp() FROM j), "
                    "n AS (SELECT pg_notify(%s, q.queue) FROM (SELECT DISTINCT queue FROM j) q) "
                    "SELECT id, run_at, expires_at, (SELECT count(*) FROM n) FROM j"
                )
                params.append(CHANNEL)
                with self.connection.cursor() as cursor:
                    cursor.execute(sql, params)
                    for job_id, run_at, expires_at, _ in cursor.fetchall():
                        inserted.add(job_id)
                        by_id[job_id].run_at = run_at
                        by_id[job_id].expires_at = expires_at
        return inserted

    def claim(self, owner: str, queues: Sequence[str], limit: int) -> list[Job]:
        if limit <= 0:
            return []
        job_table, event_table = Job._meta.db_table, JobEvent._meta.db_table
        queue_sql, queue_param = (
            ("queue = %s", queues[0]) if len(queues) == 1 else ("queue = ANY(%s)", list(queues))
        )
        sql = (
            f'WITH picked AS MATERIALIZED (SELECT id FROM "{job_table}" '
            f"WHERE status = 'pending' AND {queue_sql} AND run_at <= statement_timestamp() "
            "AND (expires_at IS NULL OR expires_at > statement_timestamp()) "
            "ORDER BY priority DESC, run_at LIMIT %s FOR UPDATE SKIP LOCKED), "
            f'claimed AS (UPDATE "{job_table}" AS t SET status = \'processing\', '
            "attempts = t.attempts + 1, lease_owner = %s, lease_token = %s, "
            "started_at = statement_timestamp(), updated_at = statement_timestamp() "
            "FROM picked WHERE t.id = picked.id "
            "RETURNING t.*), "
            f'ev AS (INSERT INTO "{event_table}" (job_id, type, data, created_at) '
            "SELECT id, 'processing', jsonb_build_object('attempt', attempts, 'worker', "
            "lease_owner), statement_timestamp() FROM claimed) "
            "SELECT * FROM claimed ORDER BY priority DESC, run_at"
        )

        def run() -> list[Job]:
            # One statement, so its own transaction outside atomic: no BEGIN/COMMIT trips.
            params = [queue_param, limit, owner, uuid.uuid4()]
            return list(Job.objects.using(self.alias).raw(sql, params))

        return self.retrying(run)

    def _complete_many(self, outcomes: list[Finish]) -> set[uuid.UUID]:
        """One statement: the rows (fenced by their leases) and their ``completed`` events."""
        job_table, event_table = Job._meta.db_table, JobEvent._meta.db_table
        rows, params = [], []
        for o in outcomes:
            rows.append("(%s::uuid, %s::uuid, %s::jsonb, %s::int)")
            result = None if o.result is None else json.dumps(o.result, allow_nan=False,
                                                               ensure_ascii=False)
            params += [o.job_id, o.lease_token, result, o.attempt]
        sql = (
            f"WITH v (id, token, result, attempt) AS (VALUES {', '.join(rows)}), "
            f'u AS (UPDATE "{job_table}" AS t SET status = \'completed\', result = v.result, '
            "completed_at = statement_timestamp(), updated_at = statement_timestamp(), "
            "lease_token = NULL, lease_owner = '' FROM v "
            "WHERE t.id = v.id AND t.lease_token = v.token AND t.status = 'processing' "
            "RETURNING t.id, v.attempt) "
            f'INSERT INTO "{event_table}" (job_id, type, data, created_at) '
            "SELECT id, 'completed', jsonb_build_object('attempt', attempt), "
            "statement_timestamp() FROM u RETURNING job_id"
        )
        with self.connection.cursor() as cursor:
            cursor.execute(sql, params)
            return {row[0] for row in cursor.fetchall()}

    def tag_condition(self, tags: list[str], mode: str) -> tuple[str, list[object]]:
        import json

        col = f'"{Job._meta.db_table}"."tags"'
        if mode == "all":
            return f"{col} @> %s::jsonb", [json.dumps(tags)]
        if mode == "exact":
            return f"({col} @> %s::jsonb AND {col} <@ %s::jsonb)", [json.dumps(tags)] * 2
        if mode == "any":
            return f"{col} ?| %s::text[]", [tags]
        return f"NOT ({col} ?| %s::text[])", [tags]

    def _histogram_rows(self, start: datetime, end: datetime,
                        size: int) -> Iterable[tuple[str, int, int]]:
        table = Job._meta.db_table
        sql = (f"SELECT status, floor(extract(epoch FROM completed_at - %s) / %s)::int, "
               f'count(*) FROM "{table}" WHERE status IN (%s, %s) AND completed_at >= %s '
               f"AND completed_at < %s GROUP BY 1, 2")
        with self.connection.cursor() as cursor:
            cursor.execute(sql, [start, size, "completed", "failed", start, end])
            return cursor.fetchall()
