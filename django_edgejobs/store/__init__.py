"""The storage seam: every read and write of the job tables that the runtime needs, named by
domain verbs (insert, claim, finish, release, reclaim, prune). Vendor-specific SQL lives here
and nowhere else."""

from __future__ import annotations

from django.db import connections, router

from .base import Finish, Store

__all__ = ["Finish", "Store", "get_store"]

_stores: dict[tuple[str, int], Store] = {}


def get_store(alias: str | None = None) -> Store:
    """The store for the database that holds jobs (the router's choice for writes)."""
    from ..models import Job

    alias = alias or router.db_for_write(Job) or "default"
    connection = connections[alias]
    key = (alias, id(connection.settings_dict))
    store = _stores.get(key)
    if store is None:
        cls: type[Store]
        if connection.vendor == "postgresql":
            from .postgres import PostgresStore

            cls = PostgresStore
        elif connection.vendor == "sqlite":
            from .sqlite import SQLiteStore

            cls = SQLiteStore
        else:
            cls = Store
        store = _stores[key] = cls(alias)
    return store
