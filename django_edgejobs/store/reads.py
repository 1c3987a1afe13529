"""Reads other layers ask the store for: ``tag_condition`` (SQL for the four tag modes, which
job filters embed). Vendors override the SQL."""

from __future__ import annotations

from . import sql_portable as sql
from .core import StoreCore


class ReadVerbs(StoreCore):
    """Tag conditions."""

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
