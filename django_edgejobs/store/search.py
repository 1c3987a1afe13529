"""Text search of jobs, for the admin: a case-insensitive "contains" over a job's last error
or its payload's JSON text. PostgreSQL answers the error search from a trigram index
(``pg_trgm``, created by migration 0009 when the extension can be created); the payload
search, other databases, and PostgreSQL without the extension scan (the admin's list reads
one capped page of the result).

The index is vendor SQL, so it lives here and not in the model's ``Meta.indexes``. It is
partial (``last_error <> ''``: most jobs never fail, and only rows that did pay for it), so a
search names that condition too, for the planner to use it. The payload has no index: a
claim or a completion writes a new row version, and a GIN index of the payload's text would
take entries for each (a no-op drain ran about 7% slower with one)."""

from __future__ import annotations

import logging
from typing import Any

from django.db import DatabaseError, transaction
from django.db.models import F, Q, TextField
from django.db.models.functions import Cast
from django.db.models.lookups import IContains

from ..models import Job

logger = logging.getLogger("django_edgejobs.store")

JOBS = Job._meta.db_table
ERROR_INDEX = "edgejobs_job_error_trgm"

#: PostgreSQL: the extension (trusted since PostgreSQL 13: the database's owner may create it).
CREATE_EXTENSION_SQL = "CREATE EXTENSION IF NOT EXISTS pg_trgm"
#: PostgreSQL: the trigram index of the errors, built without blocking writes.
CREATE_INDEXES_SQL = (
    f'CREATE INDEX CONCURRENTLY IF NOT EXISTS "{ERROR_INDEX}" ON "{JOBS}" '
    "USING gin (last_error gin_trgm_ops) WHERE last_error <> ''",
)
DROP_INDEXES_SQL = (f'DROP INDEX CONCURRENTLY IF EXISTS "{ERROR_INDEX}"',)


class ILikeContains(IContains):
    """``icontains`` that PostgreSQL writes as ``ILIKE`` over the bare column (Django writes
    ``UPPER(col::text) LIKE UPPER(…)``, which no trigram index serves)."""

    def as_postgresql(self, compiler: Any, connection: Any) -> tuple[str, list[Any]]:
        lhs, lhs_params = compiler.compile(self.lhs)
        rhs, rhs_params = self.process_rhs(compiler, connection)
        return f"({lhs}) ILIKE {rhs}", [*lhs_params, *rhs_params]


def error_contains(term: str) -> Q:
    """Jobs whose last error contains ``term`` (any case)."""
    return Q(ILikeContains(F("last_error"), term)) & ~Q(last_error="")


def payload_contains(term: str) -> Q:
    """Jobs whose payload, as JSON text, contains ``term`` (any case). Values under redacted
    keys are searched too: the admin offers this to users who may change jobs."""
    return Q(ILikeContains(Cast("payload", output_field=TextField()), term))


def create_indexes(schema_editor: Any) -> None:
    """Migration 0009 forwards: on PostgreSQL, the extension and the indexes; when the
    extension cannot be created (not the owner, an old server), a warning and no index."""
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    try:
        with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
            cursor.execute(CREATE_EXTENSION_SQL)
    except DatabaseError as exc:
        logger.warning("django_edgejobs: cannot create the pg_trgm extension (%s); the admin's "
                       "error search will scan the jobs table", exc)
        return
    with connection.cursor() as cursor:
        for statement in CREATE_INDEXES_SQL:
            cursor.execute(statement)


def drop_indexes(schema_editor: Any) -> None:
    """Migration 0009 backwards (the extension stays: other code may use it)."""
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        for statement in DROP_INDEXES_SQL:
            cursor.execute(statement)
