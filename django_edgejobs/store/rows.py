"""Jobs from raw rows: the hot paths select every column of the job table by hand and build
``Job`` instances here, without a queryset (its compiler costs more than the statement)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
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


#: Values whose prepared form depends only on the field and the value itself.
_CONSTANT_TYPES = frozenset({str, int, float, bool, type(None)})
#: Prepared constants by (alias, field, type, value): the queue, the type, the status...
_prepared: dict[tuple[str, str, type, Any], Any] = {}


def job_values(connection: Any, jobs: list[Job]) -> list[tuple[Any, ...]]:
    """The rows of ``jobs`` for an ``INSERT`` of ``job_columns()``, as ``bulk_create`` would
    send them (each field's ``get_db_prep_save``), without its compiler. A value every job
    shares (in a bulk load, most columns) is prepared once, and so are the constants every
    enqueue repeats (type, queue, status, defaults) and a moment several fields share."""
    if len(_prepared) > 4096:
        _prepared.clear()
    alias = connection.alias
    moments: dict[Any, Any] = {}  # datetime -> prepared (run_at, created_at, updated_at)
    if len(jobs) == 1:
        job = jobs[0]
        return [tuple([_prepare(connection, alias, f, getattr(job, f.attname), moments)
                       for f in _FIELDS])]
    columns = []
    for f in _FIELDS:
        values = [getattr(job, f.attname) for job in jobs]
        if values.count(values[0]) == len(values):
            columns.append([_prepare(connection, alias, f, values[0], moments)] * len(values))
        else:
            columns.append([_prepare(connection, alias, f, value, moments) for value in values])
    return list(zip(*columns, strict=True))


def _prepare(connection: Any, alias: str, f: Any, value: Any, moments: dict[Any, Any]) -> Any:
    cls = value.__class__
    if cls in _CONSTANT_TYPES:
        key = (alias, f.attname, cls, value)
        found = _prepared.get(key, _prepared)
        if found is _prepared:
            found = _prepared[key] = f.get_db_prep_save(value, connection)
        return found
    if cls is datetime and f.get_internal_type() == "DateTimeField":
        found = moments.get(value, moments)
        if found is moments:
            found = moments[value] = f.get_db_prep_save(value, connection)
        return found
    return f.get_db_prep_save(value, connection)
