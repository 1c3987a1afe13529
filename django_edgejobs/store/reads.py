"""Reads other layers ask the store for: ``tag_condition`` (SQL for the four tag modes, which
job filters embed) and the dashboard's ``finished_histogram``. Vendors override the SQL."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from ..models import Job, JobStatus
from . import sql_portable as sql
from .core import StoreCore


class ReadVerbs(StoreCore):
    """Tag conditions and the histogram."""

    def tag_condition(self, tags: list[str], mode: str) -> tuple[str, list[object]]:
        """SQL (and params) true when a job's tags match ``tags`` under ``mode``.

        Portable form over SQLite's ``json_each``; PostgreSQL uses jsonb operators.
        """
        if mode == "any":
            return sql.tags_any_sql(len(tags)), list(tags)
        if mode == "none":
            return sql.tags_none_sql(len(tags)), list(tags)
        if mode == "exact" and not tags:
            return sql.TAGS_EMPTY_SQL, []
        if mode == "all":
            return sql.tags_all_sql(len(tags)), [*tags, len(tags)]
        return sql.tags_exact_sql(len(tags)), [*tags, len(tags), *tags]

    # -- the dashboard's reads ------------------------------------------------------------

    def finished_histogram(self, start: datetime, size: int, count: int) -> dict[str, list[int]]:
        """Jobs completed and failed in each of ``count`` buckets of ``size`` seconds from
        ``start``: one range scan of the (status, completed_at) index, which covers it."""
        out = {JobStatus.COMPLETED.value: [0] * count, JobStatus.FAILED.value: [0] * count}
        end = start + timedelta(seconds=size * count)
        for status, bucket, n in self._histogram_rows(start, end, size):
            if status in out and 0 <= bucket < count:
                out[status][bucket] += n
        return out

    def _histogram_rows(self, start: datetime, end: datetime,
                        size: int) -> Iterable[tuple[str, int, int]]:
        """(status, bucket, count) rows. Portable: buckets counted here (vendors: in SQL)."""
        rows = (Job.objects.using(self.alias)
                .filter(status__in=(JobStatus.COMPLETED, JobStatus.FAILED),
                        completed_at__gte=start, completed_at__lt=end)
                .values_list("status", "completed_at"))
        for status, at in rows.iterator(chunk_size=5000):
            if at is not None:  # the filter guarantees it; the type does not
                yield status, int((at - start).total_seconds() // size), 1
