"""The storage seam of DatabaseEdgeCache: every SQL statement it runs, named by what it does.

Each write is one statement, so it is atomic across processes without explicit locks:
``INSERT ... ON CONFLICT (location, key_hash) DO UPDATE ... RETURNING`` on SQLite (>= 3.35,
Django needs 3.37) and PostgreSQL. An expired row counts as absent everywhere: a write over it
behaves as a write over nothing (its metadata is dropped), and readers delete it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connections

from .base import INT64_MAX, INT64_MIN

SUPPORTED_VENDORS = ("sqlite", "postgresql")
_CHUNK = 500  # rows per multi-row statement (SQLite allows 32766 parameters)


@dataclass(slots=True)
class Row:
    """One key to write."""

    key_hash: str
    key: str
    value: bytes | None
    int_value: int | None
    expires_at_ms: int | None
    metadata: str | None = None


class CacheStore:
    """SQL for one LOCATION of the cache table, on the database alias given per call."""

    def __init__(self, location: str) -> None:
        # Not at module level: Django imports cache backends from settings, possibly before
        # the app registry is ready (models cannot be imported then).
        from django_edgejobs.models import CacheEntry

        self.location = location
        self.model = CacheEntry

    # --- helpers -----------------------------------------------------------------------------

    def _q(self, db: str) -> dict[str, str]:
        connection = connections[db]
        if connection.vendor not in SUPPORTED_VENDORS:
            raise NotImplementedError(
                f"DatabaseEdgeCache supports SQLite and PostgreSQL, not {connection.vendor}")
        quote = connection.ops.quote_name
        names = {str(f.column): quote(str(f.column)) for f in self.model._meta.local_fields}
        names["t"] = quote(self.model._meta.db_table)
        return names

    def _run(self, db: str, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        with connections[db].cursor() as cursor:
            cursor.execute(sql, params)
            return list(cursor.fetchall()) if cursor.description else []

    def _rowcount(self, db: str, sql: str, params: Sequence[Any]) -> int:
        with connections[db].cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.rowcount

    @staticmethod
    def _expired(q: dict[str, str]) -> str:
        """SQL: the existing row (in an upsert) has expired; takes one ``now`` parameter."""
        column = f"{q['t']}.{q['expires_at_ms']}"
        return f"({column} IS NOT NULL AND {column} <= %s)"

    @staticmethod
    def _live(q: dict[str, str]) -> str:
        return f"({q['expires_at_ms']} IS NULL OR {q['expires_at_ms']} > %s)"

    @staticmethod
    def _in(hashes: Sequence[str]) -> str:
        return ", ".join(["%s"] * len(hashes))

    # --- reads -------------------------------------------------------------------------------

    def fetch(self, db: str, hashes: Sequence[str],
              columns: str = "key_hash, value, int_value, expires_at_ms") -> list[tuple[Any, ...]]:
        """Rows (live or expired) for these hashes; ``columns`` by their column names."""
        if not hashes:
            return []
        q = self._q(db)
        cols = ", ".join(q[c.strip()] for c in columns.split(","))
        sql = (f"SELECT {cols} FROM {q['t']} WHERE {q['location']} = %s "
               f"AND {q['key_hash']} IN ({self._in(hashes)})")
        return self._run(db, sql, [self.location, *hashes])

    def scan(self, db: str, like_prefix: str, now: int) -> list[tuple[str, str | None, int | None]]:
        """(key, metadata, expires_at_ms) of live rows whose stored key starts with the text."""
        q = self._q(db)
        connection = connections[db]
        escaped = connection.ops.prep_for_like_query(like_prefix)
        like = connection.operators["startswith"] % "%s"  # type: ignore[attr-defined]
        sql = (f"SELECT {q['key']}, {q['metadata']}, {q['expires_at_ms']} FROM {q['t']} "
               f"WHERE {q['location']} = %s AND {q['key']} {like} AND {self._live(q)} "
               f"ORDER BY {q['key']}")
        return self._run(db, sql, [self.location, f"{escaped}%", now])

    def count(self, db: str) -> int:
        q = self._q(db)
        return self._run(db, f"SELECT COUNT(*) FROM {q['t']} WHERE {q['location']} = %s",
                         [self.location])[0][0]

    # --- writes ------------------------------------------------------------------------------

    def upsert(self, db: str, rows: Sequence[Row], now: int, keep_metadata: bool) -> None:
        """Write rows; ``keep_metadata``: a live row keeps its metadata, else it is replaced."""
        q = self._q(db)
        metadata = (f"CASE WHEN {self._expired(q)} THEN NULL ELSE {q['t']}.{q['metadata']} END"
                    if keep_metadata else f"excluded.{q['metadata']}")
        for start in range(0, len(rows), _CHUNK):
            chunk = rows[start:start + _CHUNK]
            values = ", ".join(["(%s, %s, %s, %s, %s, %s, %s)"] * len(chunk))
            sql = (f"INSERT INTO {q['t']} ({q['location']}, {q['key_hash']}, {q['key']}, "
                   f"{q['value']}, {q['int_value']}, {q['metadata']}, {q['expires_at_ms']}) "
                   f"VALUES {values} ON CONFLICT ({q['location']}, {q['key_hash']}) DO UPDATE SET "
                   f"{q['metadata']} = {metadata}, "
                   f"{q['value']} = excluded.{q['value']}, "
                   f"{q['int_value']} = excluded.{q['int_value']}, "
                   f"{q['expires_at_ms']} = excluded.{q['expires_at_ms']}")
            params: list[Any] = []
            for row in chunk:
                params += [self.location, row.key_hash, row.key, row.value, row.int_value,
                           row.metadata, row.expires_at_ms]
            if keep_metadata:
                params.append(now)
            self._run(db, sql, params)

    def insert_absent(self, db: str, row: Row, now: int) -> bool:
        """Write the row only where no live row exists (``add``); True if written."""
        q = self._q(db)
        sql = (f"INSERT INTO {q['t']} ({q['location']}, {q['key_hash']}, {q['key']}, "
               f"{q['value']}, {q['int_value']}, {q['metadata']}, {q['expires_at_ms']}) "
               f"VALUES (%s, %s, %s, %s, %s, %s, %s) "
               f"ON CONFLICT ({q['location']}, {q['key_hash']}) DO UPDATE SET "
               f"{q['value']} = excluded.{q['value']}, "
               f"{q['int_value']} = excluded.{q['int_value']}, "
               f"{q['metadata']} = excluded.{q['metadata']}, "
               f"{q['expires_at_ms']} = excluded.{q['expires_at_ms']} "
               f"WHERE {self._expired(q)} RETURNING {q['id']}")
        params = [self.location, row.key_hash, row.key, row.value, row.int_value, row.metadata,
                  row.expires_at_ms, now]
        return bool(self._run(db, sql, params))

    def increment(self, db: str, row: Row, amount: int, now: int, create: bool,
                  heal: bool) -> tuple[int, int | None] | None:
        """Add ``amount`` to a live integer row in one statement; returns (value, expires_at_ms).

        ``create``: a missing (or expired) key becomes ``row`` (its int_value and expiry).
        ``heal``: a live row without expiry gets ``row``'s expiry (a rate-limit window).
        None when nothing changed: no live row (and not ``create``), a non-integer value, or
        a result outside 64 bits.
        """
        q = self._q(db)
        t, expired = q["t"], self._expired(q)
        bound = (f"{t}.{q['int_value']} <= %s" if amount >= 0 else f"{t}.{q['int_value']} >= %s")
        limit = INT64_MAX - amount if amount >= 0 else INT64_MIN - amount
        if not create:
            sql = (f"UPDATE {t} SET {q['int_value']} = {q['int_value']} + %s "
                   f"WHERE {q['location']} = %s AND {q['key_hash']} = %s AND {self._live(q)} "
                   f"AND {q['int_value']} IS NOT NULL AND {bound.replace(t + '.', '')} "
                   f"RETURNING {q['int_value']}, {q['expires_at_ms']}")
            rows = self._run(db, sql, [amount, self.location, row.key_hash, now, limit])
            return (int(rows[0][0]), rows[0][1]) if rows else None
        expiry = (f"CASE WHEN {expired} OR {t}.{q['expires_at_ms']} IS NULL "
                  f"THEN excluded.{q['expires_at_ms']} ELSE {t}.{q['expires_at_ms']} END"
                  if heal else
                  f"CASE WHEN {expired} THEN excluded.{q['expires_at_ms']} "
                  f"ELSE {t}.{q['expires_at_ms']} END")
        sql = (f"INSERT INTO {t} ({q['location']}, {q['key_hash']}, {q['key']}, {q['value']}, "
               f"{q['int_value']}, {q['metadata']}, {q['expires_at_ms']}) "
               f"VALUES (%s, %s, %s, NULL, %s, NULL, %s) "
               f"ON CONFLICT ({q['location']}, {q['key_hash']}) DO UPDATE SET "
               f"{q['int_value']} = CASE WHEN {expired} THEN excluded.{q['int_value']} "
               f"ELSE {t}.{q['int_value']} + excluded.{q['int_value']} END, "
               f"{q['value']} = CASE WHEN {expired} THEN NULL ELSE {t}.{q['value']} END, "
               f"{q['metadata']} = CASE WHEN {expired} THEN NULL ELSE {t}.{q['metadata']} END, "
               f"{q['expires_at_ms']} = {expiry} "
               f"WHERE {expired} OR ({t}.{q['int_value']} IS NOT NULL AND {bound}) "
               f"RETURNING {q['int_value']}, {q['expires_at_ms']}")
        # now: the four CASEs of SET, then the WHERE; limit: the 64-bit bound.
        params = [self.location, row.key_hash, row.key, amount, row.expires_at_ms,
                  *[now] * 5, limit]
        rows = self._run(db, sql, params)
        return (int(rows[0][0]), rows[0][1]) if rows else None

    def set_expiry(self, db: str, key_hash: str, expires_at_ms: int | None, now: int) -> bool:
        """Change a live row's expiry (metadata lives in the row, so it follows). True if live."""
        q = self._q(db)
        sql = (f"UPDATE {q['t']} SET {q['expires_at_ms']} = %s WHERE {q['location']} = %s "
               f"AND {q['key_hash']} = %s AND {self._live(q)}")
        return self._rowcount(db, sql, [expires_at_ms, self.location, key_hash, now]) > 0

    def rename(self, db: str, key_hash: str, new: Row, now: int) -> bool:
        """Move a live row to another key (``incr_version``), replacing whatever was there."""
        q = self._q(db)
        self.delete(db, [new.key_hash], now)
        sql = (f"UPDATE {q['t']} SET {q['key_hash']} = %s, {q['key']} = %s "
               f"WHERE {q['location']} = %s AND {q['key_hash']} = %s AND {self._live(q)}")
        return self._rowcount(db, sql, [new.key_hash, new.key, self.location, key_hash, now]) > 0

    def delete(self, db: str, hashes: Sequence[str], now: int) -> int:
        """Delete rows (expired ones too); returns how many of them were live."""
        if not hashes:
            return 0
        q = self._q(db)
        live = 0
        for start in range(0, len(hashes), _CHUNK):
            chunk = hashes[start:start + _CHUNK]
            sql = (f"DELETE FROM {q['t']} WHERE {q['location']} = %s "
                   f"AND {q['key_hash']} IN ({self._in(chunk)}) RETURNING {q['expires_at_ms']}")
            rows = self._run(db, sql, [self.location, *chunk])
            live += sum(1 for (expires,) in rows if expires is None or expires > now)
        return live

    def delete_expired(self, db: str, now: int) -> int:
        q = self._q(db)
        sql = (f"DELETE FROM {q['t']} WHERE {q['location']} = %s "
               f"AND {q['expires_at_ms']} IS NOT NULL AND {q['expires_at_ms']} <= %s")
        return self._rowcount(db, sql, [self.location, now])

    def delete_oldest(self, db: str, count: int) -> int:
        """Cull: delete the ``count`` oldest-written rows of this location."""
        q = self._q(db)
        rows = self._run(db, f"SELECT {q['id']} FROM {q['t']} WHERE {q['location']} = %s "
                             f"ORDER BY {q['id']} LIMIT 1 OFFSET %s", [self.location, count])
        if not rows:
            return 0
        return self._rowcount(db, f"DELETE FROM {q['t']} WHERE {q['location']} = %s "
                                  f"AND {q['id']} < %s", [self.location, rows[0][0]])

    def clear(self, db: str) -> int:
        q = self._q(db)
        return self._rowcount(db, f"DELETE FROM {q['t']} WHERE {q['location']} = %s",
                              [self.location])
