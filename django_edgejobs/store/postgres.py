"""PostgreSQL: claim with ``FOR UPDATE SKIP LOCKED``, enqueue in one statement, wake workers
with LISTEN/NOTIFY (the notification is delivered when the enqueueing transaction commits).

The statements are named in ``sql_postgres.py``; this module binds their parameters and runs
them (``_bound``: server-side binding, prepared where the connection keeps its session)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from operator import attrgetter
from typing import Any, NamedTuple

import psycopg

from ..conf import get_settings
from ..models import Job
from . import sql_postgres as sql
from .base import Finish, Store
from .claim import JobTypes
from .pooler import behind_transaction_pooler
from .rows import jobs_from_rows
from .sql_postgres import CHANNEL

__all__ = ["CHANNEL", "PostgresStore"]


class _InsertShape(NamedTuple):
    """The enqueue statement's pieces, derived once from the Job model.

    Every concrete field is one parameter column; ``run_at`` and ``expires_at`` come with a
    second one of seconds, for the moments the database computes from its own clock (a
    ``delay``, an ``expires`` in seconds). A column whose value is the same for every job
    travels as one value, the others as one array each (``unnest``)."""

    columns: str  # the job table's columns
    selected: str  # what the SELECT yields for them, from the parameter columns
    names: list[str]  # the parameter columns
    scalar_params: list[str]  # each one's parameter when all jobs share its value
    array_params: list[str]  # ... and when it is an array of one value per job
    getters: list[Callable[[Job], object]]  # one per parameter column: a job's value in it


_shape: _InsertShape | None = None


def _insert_shape(connection: Any) -> _InsertShape:
    """Built on first use (PostgreSQL's column types are the same on every connection)."""
    global _shape
    if _shape is None:
        _shape = _build_insert_shape(connection)
    return _shape


def _build_insert_shape(connection: Any) -> _InsertShape:
    names: list[str] = []
    selected: list[str] = []
    types: list[str] = []
    getters: list[Callable[[Job], object]] = []
    for f in Job._meta.concrete_fields:
        if f.attname in ("created_at", "updated_at"):  # the database's clock, no parameter
            selected.append(sql.STATEMENT_MOMENT_SQL)
            continue
        name = f"c_{f.column}"
        kind = f.get_internal_type()
        names.append(name)
        types.append("text" if kind == "JSONField" else str(f.db_type(connection)))
        if f.attname in ("run_at", "expires_at"):
            seconds = "enqueue_delay" if f.attname == "run_at" else "enqueue_expires"
            names.append(f"{name}_in")
            types.append("float8")
            selected.append(sql.moment_column_sql(name))
            getters += [partial(_moment, f.attname, seconds), partial(_as_float, seconds)]
            continue
        selected.append(sql.json_column_sql(name) if kind == "JSONField" else name)
        if f.attname == "payload":
            getters.append(_payload_text)
        elif kind == "JSONField":
            getters.append(partial(_json_text, f.attname))
        elif kind == "FloatField":
            getters.append(partial(_as_float, f.attname))
        else:
            getters.append(attrgetter(f.attname))
    return _InsertShape(
        columns=", ".join(f'"{f.column}"' for f in Job._meta.concrete_fields),
        selected=", ".join(selected), names=names,
        scalar_params=[sql.scalar_param_sql(type_) for type_ in types],
        array_params=[sql.array_param_sql(type_) for type_ in types], getters=getters)


def _payload_text(job: Job) -> str:
    """enqueue keeps the JSON text it validated; otherwise encode the payload now."""
    return getattr(job, "payload_json", None) or json.dumps(job.payload)


#: The JSON text of the values a new job's JSON fields usually hold.
_EMPTY_JSON = {list: "[]", dict: "{}"}


def _json_text(attname: str, job: Job) -> str | None:
    value = getattr(job, attname)
    if value is None:
        return None
    if not value and value.__class__ in _EMPTY_JSON:
        return _EMPTY_JSON[value.__class__]
    return json.dumps(value)


def _moment(attname: str, seconds_attname: str, job: Job) -> object:
    """The stored moment, or NULL when the database computes it from seconds."""
    return None if getattr(job, seconds_attname, None) is not None else getattr(job, attname)


def _as_float(attname: str, job: Job) -> float | None:
    """An array holds one type: 60 becomes 60.0. Unset transient attributes are NULL."""
    value = getattr(job, attname, None)
    return None if value is None else float(value)


def _event_json(data: dict[str, Any]) -> str:
    """``json.dumps(data)``; a plain completion's ``{"attempt": n}`` (almost every outcome)
    without the encoder's cost."""
    if len(data) == 1 and type(data.get("attempt")) is int:
        return f'{{"attempt": {data["attempt"]}}}'
    return json.dumps(data)


def _literal(values: Sequence[Any], text: Callable[[Any], str] = str) -> str:
    """An array of UUIDs or floats as PostgreSQL's array literal, for a ``%s::uuid[]`` or
    ``%s::float8[]`` parameter: psycopg's list dumper costs several microseconds an element
    (one completion statement of 50 jobs binds in ~180 us instead of ~300 us)."""
    return "{" + ",".join("NULL" if v is None else text(v) for v in values) + "}"


class PostgresStore(Store):
    supports_notify = True
    bulk_complete = bulk_complete_is_atomic = True
    now_sql = "statement_timestamp()"

    def _bound(self, statement: str, params: Sequence[object]) -> list[tuple[Any, ...]]:
        """Run one hot-path statement with server-side binding and return its rows.

        Django's psycopg cursor binds on the client (it quotes every value into the SQL text
        in Python); this one sends the parameters apart, in binary, and psycopg prepares
        the statement on the server (``PREPARED_STATEMENTS``; never behind a transaction
        pooler, see ``pooler.py``). Errors are Django's, the connection's
        ``execute_wrapper`` hooks see the statement, and it is logged like any other when
        queries are (``CaptureQueriesContext``, DEBUG)."""
        conn = self.connection
        conn.ensure_connection()
        conn.validate_no_broken_transaction()
        raw = conn.connection
        with conn.wrap_database_errors:
            # Behind a transaction pooler the next transaction may run on another server
            # connection, which has no such prepared statement, or another client's.
            prepare = (get_settings().PREPARED_STATEMENTS
                       and not behind_transaction_pooler(conn.alias, raw))
        if prepare and raw.prepare_threshold is None:
            # Django leaves automatic preparing off (None); a threshold no statement reaches
            # keeps it off for Django's queries while ``prepare=True`` works for ours.
            raw.prepare_threshold = 2**31 - 1
        started = time.monotonic()
        with conn.wrap_database_errors, psycopg.Cursor(raw) as cursor:

            def execute(text: str, params: Any, many: bool, context: dict[str, Any]) -> None:
                cursor.execute(text, params, prepare=prepare)

            for wrapper in reversed(conn.execute_wrappers):  # connection.execute_wrapper()
                execute = partial(wrapper, execute)
            execute(statement, params, False, {"connection": conn, "cursor": cursor})
            rows = cursor.fetchall() if cursor.description else []
        if conn.queries_logged:
            conn.queries_log.append({"sql": statement, "time": f"{time.monotonic() - started:.3f}"})
        return rows

    def notify(self, queues: Iterable[str]) -> None:
        queues = sorted(set(queues))
        if not queues:
            return
        with self.connection.cursor() as cursor:
            cursor.execute(sql.NOTIFY_SQL, [CHANNEL, queues])

    def _insert_rows(self, jobs: list[Job], *, conflicts: bool) -> set[uuid.UUID]:
        """One statement: the rows, their ``added`` events and the notification.

        A column whose value differs between the jobs travels as one array parameter
        (``unnest``), so the statement and its parameter list stay the same size however
        many jobs there are; a column every job shares (in a bulk load, all but the id and
        the payload, usually) travels as one value, and a single job sends only values
        (psycopg dumps arrays in Python, element by element: that cost more than the
        insert). A delayed job's ``run_at`` (and an expiry given in seconds) is computed in
        SQL from the database's clock."""
        inserted: set[uuid.UUID] = set()
        if not jobs:
            return inserted
        shape = _insert_shape(self.connection)
        arrays: list[object] = []
        array_names, array_params = [], []
        scalars: list[object] = []
        scalar_names, scalar_params = [], []
        for name, scalar_param, array_param, get in zip(
                shape.names, shape.scalar_params, shape.array_params, shape.getters,
                strict=True):
            values = [get(job) for job in jobs]
            if values.count(values[0]) == len(values):  # a bulk load shares most columns
                scalars.append(values[0])
                scalar_names.append(name)
                scalar_params.append(scalar_param)
            else:
                arrays.append(values)
                array_names.append(name)
                array_params.append(array_param)
        statement = sql.insert_jobs_sql(shape.columns, shape.selected, array_names, array_params,
                                        scalar_names, scalar_params, conflicts)
        by_id = {job.id: job for job in jobs}
        for job_id, run_at, expires_at, created_at, _ in self._bound(
                statement, [*arrays, *scalars, CHANNEL]):
            inserted.add(job_id)
            job = by_id[job_id]
            job.run_at, job.expires_at = run_at, expires_at
            job.created_at = job.updated_at = created_at
        return inserted

    def claim(self, owner: str, queues: Sequence[str], limit: int,
              types: JobTypes | None = None) -> list[Job]:
        if limit <= 0:
            return []
        statement = sql.CLAIM_SQL
        params: list[object] = [list(dict.fromkeys(queues))]
        if types:
            statement = sql.claim_sql(bool(types.only), bool(types.exclude))
            params += [list(names) for names in (types.only, types.exclude) if names]
        params += [limit, limit]

        def run() -> list[Job]:
            # One statement, so its own transaction outside atomic: no BEGIN/COMMIT trips.
            rows = self._bound(statement, [*params, owner, uuid.uuid4()])
            return jobs_from_rows(self.connection, rows)

        return self.retrying(run)

    def _lock_limit_keys(self, keys: Sequence[str]) -> None:
        """Advisory locks: no row per key to write or keep."""
        with self.connection.cursor() as cursor:
            cursor.execute(sql.LOCK_KEYS_SQL, [list(keys)])

    def _complete_many(self, outcomes: list[Finish]) -> tuple[set[uuid.UUID], set[uuid.UUID]]:
        """One statement: the rows (fenced by their leases), their ``completed`` events, and
        which of them have dependents to settle."""
        ids, tokens, results, events = [], [], [], []
        began: list[float | None] = []
        ended: list[float | None] = []
        now = time.monotonic()
        for o in outcomes:
            ids.append(o.job_id)
            tokens.append(o.lease_token)
            results.append(None if o.result is None else json.dumps(
                o.result, allow_nan=False, ensure_ascii=False))
            events.append(_event_json(o.event_data))
            ago = o.ran_ago(now)
            began.append(None if ago is None else ago[0])
            ended.append(None if ago is None else ago[1])
        rows = self._bound(sql.COMPLETE_MANY_SQL, [
            _literal(ids), _literal(tokens), results, events, _literal(began, repr),
            _literal(ended, repr)])
        return {row[0] for row in rows}, {row[0] for row in rows if row[1]}

    def tag_condition(self, tags: list[str], mode: str) -> tuple[str, list[object]]:
        if mode == "all":
            return sql.TAGS_ALL_SQL, [json.dumps(tags)]
        if mode == "exact":
            return sql.TAGS_EXACT_SQL, [json.dumps(tags)] * 2
        if mode == "any":
            return sql.TAGS_ANY_SQL, [tags]
        return sql.TAGS_NONE_SQL, [tags]
