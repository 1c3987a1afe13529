"""The database's clock, at the precision Django stores times in."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.db.models import functions


class Now(functions.Now):
    """``Now()`` with microseconds on every database.

    Django's ``Now()`` on SQLite is ``STRFTIME(…, 'NOW')``: milliseconds, while the times
    Django writes from Python have microseconds. Mixed, a time written by SQL can sort before
    one written a moment earlier from Python (``'…05.123'`` < ``'…05.123456'``): a job
    finished before it started, a just-enqueued job not yet due. SQLite is embedded, so its
    clock *is* this host's clock: the moment is read here, at full precision, and bound as a
    parameter (one moment per statement, as SQLite's own ``'now'`` is). PostgreSQL keeps
    ``STATEMENT_TIMESTAMP()`` (microseconds, the server's clock).
    """

    def as_sqlite(self, compiler: Any, connection: Any,
                  **extra_context: Any) -> tuple[str, tuple[str, ...]]:
        return "%s", (sqlite_now(connection),)


def sqlite_now(connection: Any) -> str:
    """This moment as SQLite stores a datetime (naive UTC text with microseconds): the host's
    clock, read as ``SQLiteStore.db_now`` reads it (USE_TZ is required, check E003)."""
    return connection.ops.adapt_datetimefield_value(datetime.now(UTC))
