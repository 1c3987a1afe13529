"""Jobs from raw rows: the hot paths select every column of the job table by hand and build
``Job`` instances here, without a queryset (its compiler costs more than the statement)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ..models import Job

_FIELDS = Job._meta.concrete_fields
_ATTNAMES = [f.attname for f in _FIELDS]


def job_columns(alias: str = "") -> str:
    """Every column of the job table, in field order (``alias.`` before each when given)."""
    prefix = f"{alias}." if alias else ""
    return ", ".join(f'{prefix}"{f.column}"' for f in _FIELDS)


Converter = Callable[[Any, Any, Any], Any]
_converters: dict[tuple[str, str], list[tuple[int, list[Converter], Any]]] = {}


def _converters_for(connection: Any) -> list[tuple[int, list[Converter], Any]]:
    """Django's converters for each column that has any, as a queryset would apply them
    (the backend's first, then the field's: SQLite's text datetimes and UUIDs, JSON)."""
    key = (connection.alias, connection.vendor)
    found = _converters.get(key)
    if found is None:
        found = []
        for i, f in enumerate(_FIELDS):
            col = f.get_col(Job._meta.db_table)
            fns = connection.ops.get_db_converters(col) + col.get_db_converters(connection)
            if fns:
                found.append((i, fns, col))
        _converters[key] = found
    return found


def jobs_from_rows(connection: Any, rows: Iterable[tuple[Any, ...]]) -> list[Job]:
    """``Job`` instances, as a queryset would build them (``from_db``), from rows of
    ``job_columns()``."""
    converters = _converters_for(connection)
    jobs = []
    for row in rows:
        values = list(row)
        for i, fns, col in converters:
            value = values[i]
            for fn in fns:
                value = fn(value, col, connection)
            values[i] = value
        jobs.append(Job.from_db(connection.alias, _ATTNAMES, values))
    return jobs
