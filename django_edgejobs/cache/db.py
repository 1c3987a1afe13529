"""DatabaseEdgeCache: the edge-cache contract on the project's database (SQLite, PostgreSQL).

```python
CACHES = {"local": {"BACKEND": "django_edgejobs.cache.DatabaseEdgeCache",
                    "LOCATION": "",            # a keyspace name; clear() empties only it
                    "KEY_PREFIX": "myapp",     # flush() empties only this prefix
                    "OPTIONS": {"MAX_ENTRIES": 300, "CULL_FREQUENCY": 3}}}
```

Rows live in ``django_edgejobs_cacheentry`` (``python manage.py migrate``). Culling follows
Django's DatabaseCache: when a write finds more than ``MAX_ENTRIES`` rows in the location it
deletes the expired ones, then the oldest ``1/CULL_FREQUENCY`` (``0``: all). With
``MAX_ENTRIES: None`` there is no size limit and expired rows are deleted at most every
``CULL_INTERVAL`` seconds (default 60) by a write, by readers that meet them, and by
``cull_expired()``.
"""

from __future__ import annotations

import hashlib
import pickle
import time
from collections.abc import Iterable, Iterator
from typing import Any

from django.core.cache.backends.base import DEFAULT_TIMEOUT, BaseCache, get_key_func
from django.db import router

from .base import (
    INT64_MAX,
    INT64_MIN,
    UNSET,
    EdgeCacheMixin,
    RateLimit,
    check_amount,
    check_rate_limit,
    check_ttl,
    default_reverse_key,
    dump_metadata,
    glob_escape,
    glob_literal_prefix,
    glob_match,
    load_metadata,
    resolve_timeout,
)
from .db_store import CacheStore, Row

__all__ = ["DatabaseEdgeCache"]

_EXPIRED = -1  # sentinel expiry: "already expired" (a timeout <= 0)


def key_hash(made_key: str) -> str:
    return hashlib.sha256(made_key.encode("utf-8", "surrogatepass")).hexdigest()


def _store_key(made_key: str) -> str:
    """Escape what a text column cannot hold (NUL on PostgreSQL); reversible, prefix-safe."""
    return made_key.replace("%", "%25").replace("\x00", "%00")


def _load_key(stored: str) -> str:
    return stored.replace("%00", "\x00").replace("%25", "%")


class DatabaseEdgeCache(EdgeCacheMixin, BaseCache):
    """A Django cache backend in a table, with RedisEdgeCache's additions and behaviour."""

    pickle_protocol = pickle.HIGHEST_PROTOCOL

    def __init__(self, location: str, params: dict[str, Any]) -> None:
        super().__init__(params)
        options = params.get("OPTIONS", {})
        if options.get("MAX_ENTRIES", 300) is None:
            self._max_entries = None  # type: ignore[assignment]
        self._cull_interval = float(options.get("CULL_INTERVAL", 60))
        self._next_cull = 0.0
        self._location = location or ""
        self._store: CacheStore | None = None
        self.reverse_key = get_key_func(params.get("REVERSE_KEY_FUNCTION") or default_reverse_key)
        self.clock = time.time  # seconds; tests may replace it

    # --- plumbing ----------------------------------------------------------------------------

    @property
    def store(self) -> CacheStore:
        if self._store is None:  # models cannot be imported when settings are read
            self._store = CacheStore(self._location)
        return self._store

    def _db(self, write: bool) -> str:
        model = self.store.model
        return (router.db_for_write(model) if write else router.db_for_read(model)) or "default"

    def _now(self) -> int:
        return int(self.clock() * 1000)

    def _expiry(self, timeout: Any, now: int) -> int | None:
        """Expiry in ms for a Django timeout; ``_EXPIRED`` for a timeout <= 0."""
        if timeout is DEFAULT_TIMEOUT:
            timeout = self.default_timeout
        if timeout is None:
            return None
        if hasattr(timeout, "total_seconds"):
            timeout = timeout.total_seconds()
        ms = int(timeout * 1000)
        return _EXPIRED if ms <= 0 else now + ms

    def _made(self, key: Any, version: int | None = None) -> str:
        return self.make_and_validate_key(key, version=version)

    def _row(self, made: str, value: Any, expires: int | None,
             metadata: dict[str, Any] | None = None) -> Row:
        if type(value) is int and INT64_MIN <= value <= INT64_MAX:
            blob, number = None, value
        else:
            blob, number = pickle.dumps(value, self.pickle_protocol), None
        meta = dump_metadata(metadata) if metadata is not None else None
        return Row(key_hash(made), _store_key(made), blob, number, expires, meta)

    @staticmethod
    def _value(blob: Any, number: int | None) -> Any:
        return number if number is not None else pickle.loads(bytes(blob))

    @staticmethod
    def _live(expires: int | None, now: int) -> bool:
        return expires is None or expires > now

    def _maybe_cull(self, db: str, now: int) -> None:
        if self._max_entries is None:
            if time.monotonic() >= self._next_cull:
                self._next_cull = time.monotonic() + self._cull_interval
                self.store.delete_expired(db, now)
            return
        num = self.store.count(db)
        if num <= self._max_entries:
            return
        if self._cull_frequency == 0:
            self.store.clear(db)
            return
        remaining = num - self.store.delete_expired(db, now)
        if remaining > self._max_entries:
            self.store.delete_oldest(db, remaining // self._cull_frequency)

    def cull_expired(self) -> int:
        """Delete every expired row of this cache's location; returns how many."""
        return self.store.delete_expired(self._db(write=True), self._now())

    # --- Django's API ------------------------------------------------------------------------

    def get(self, key: Any, default: Any = None, version: int | None = None) -> Any:
        made = self._made(key, version)
        return self._get_many_made({made: key}).get(key, default)

    def get_many(self, keys: Iterable[Any], version: int | None = None) -> dict[Any, Any]:
        return self._get_many_made({self._made(key, version): key for key in keys})

    def _get_many_made(self, made_to_key: dict[str, Any]) -> dict[Any, Any]:
        if not made_to_key:
            return {}
        by_hash = {key_hash(made): key for made, key in made_to_key.items()}
        now, found, expired = self._now(), {}, []
        for h, blob, number, expires in self.store.fetch(self._db(False), list(by_hash)):
            if self._live(expires, now):
                found[by_hash[h]] = self._value(blob, number)
            else:
                expired.append(h)
        if expired:
            self.store.delete(self._db(True), expired, now)
        return found

    def set(  # type: ignore[override]  # returns True, as RedisEdgeCache (django-redis) does
            self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT,
            version: int | None = None, *, metadata: dict[str, Any] | None = None,
            ttl: Any = UNSET) -> bool:
        self.set_many({key: value}, resolve_timeout(timeout, ttl), version, metadata=metadata)
        return True

    def set_many(self, data: dict[Any, Any], timeout: Any = DEFAULT_TIMEOUT,
                 version: int | None = None, *, metadata: dict[str, Any] | None = None,
                 ttl: Any = UNSET) -> list[Any]:
        """One statement for all keys; returns the keys that failed (none)."""
        timeout = resolve_timeout(timeout, ttl)
        if not data:
            return []
        now = self._now()
        expires = self._expiry(timeout, now)
        rows = [self._row(self._made(key, version), value, expires, metadata)
                for key, value in data.items()]
        db = self._db(True)
        if expires == _EXPIRED:
            self.store.delete(db, [row.key_hash for row in rows], now)
            return []
        self._maybe_cull(db, now)
        self.store.upsert(db, rows, now, keep_metadata=metadata is None)
        return []

    def add(self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT,
            version: int | None = None, *, metadata: dict[str, Any] | None = None,
            ttl: Any = UNSET) -> bool:
        timeout = resolve_timeout(timeout, ttl)
        now = self._now()
        expires = self._expiry(timeout, now)
        made = self._made(key, version)
        row = self._row(made, value, expires, metadata)
        if expires == _EXPIRED:
            return not self.has_key(key, version)
        db = self._db(True)
        self._maybe_cull(db, now)
        return self.store.insert_absent(db, row, now)

    def has_key(self, key: Any, version: int | None = None) -> bool:
        made, now = self._made(key, version), self._now()
        rows = self.store.fetch(self._db(False), [key_hash(made)], "expires_at_ms")
        return bool(rows) and self._live(rows[0][0], now)

    def touch(self, key: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        made, now = self._made(key, version), self._now()
        expires = self._expiry(timeout, now)
        if expires == _EXPIRED:
            return self.store.delete(self._db(True), [key_hash(made)], now) > 0
        return self.store.set_expiry(self._db(True), key_hash(made), expires, now)

    def delete(self, key: Any, version: int | None = None) -> bool:
        made = self._made(key, version)
        return self.store.delete(self._db(True), [key_hash(made)], self._now()) > 0

    def delete_many(  # type: ignore[override]  # the count, as RedisEdgeCache returns it
            self, keys: Iterable[Any], version: int | None = None) -> int | None:
        """Django returns None for no keys; otherwise the number of keys deleted."""
        hashes = [key_hash(self._made(key, version)) for key in keys]
        if not hashes:
            return None
        return self.store.delete(self._db(True), hashes, self._now())

    def clear(self) -> None:
        """Delete every row of this cache's LOCATION (all prefixes). See ``flush()``."""
        self.store.clear(self._db(True))

    def incr(self, key: Any, delta: int = 1, version: int | None = None) -> Any:
        """Django's incr: ValueError on a missing key; atomic for 64-bit integers."""
        made, now = self._made(key, version), self._now()
        db = self._db(True)
        result = None
        if type(delta) is int:
            result = self.store.increment(db, self._row(made, None, None), delta, now, False,
                                          False)
        if result is not None:
            return result[0]
        # Not a 64-bit integer (a float, a big int, a string...): Django's generic path.
        rows = self.store.fetch(db, [key_hash(made)], "key_hash, value, int_value, expires_at_ms")
        if not rows or not self._live(rows[0][3], now):
            raise ValueError(f"Key '{key}' not found")
        new_value = self._value(rows[0][1], rows[0][2]) + delta
        self.store.upsert(db, [self._row(made, new_value, rows[0][3])], now, keep_metadata=True)
        return new_value

    def incr_version(self, key: Any, delta: int = 1, version: int | None = None) -> int:
        """Move the value and its metadata to ``version + delta``, keeping the expiry."""
        if version is None:
            version = self.version
        old, new = self._made(key, version), self._made(key, version + delta)
        if not self.store.rename(self._db(True), key_hash(old), self._row(new, None, None),
                                 self._now()):
            raise ValueError(f"Key '{key}' not found")
        return version + delta

    # --- the edge additions ------------------------------------------------------------------

    def get_metadata(self, key: Any, version: int | None = None) -> dict[str, Any] | None:
        made, now = self._made(key, version), self._now()
        rows = self.store.fetch(self._db(False), [key_hash(made)], "metadata, expires_at_ms")
        if not rows or not self._live(rows[0][1], now):
            return None
        return load_metadata(rows[0][0])

    def increment(self, key: Any, amount: int = 1, *, ttl: float | None = None,
                  version: int | None = None) -> int:
        """Atomically add ``amount``; a missing key is created with it, expiring after ``ttl``
        seconds (``ttl`` only applies when this call creates the key)."""
        amount = check_amount(amount)
        ttl = check_ttl(ttl)
        made, now = self._made(key, version), self._now()
        expires = None if ttl is None else now + max(1, int(ttl * 1000))
        return self._increment(key, made, amount, expires, now, heal=False)[0]

    def _increment(self, key: Any, made: str, amount: int, expires: int | None, now: int,
                   heal: bool) -> tuple[int, int | None]:
        db = self._db(True)
        self._maybe_cull(db, now)
        result = self.store.increment(db, self._row(made, amount, expires), amount, now,
                                      True, heal)
        if result is not None:
            return result
        rows = self.store.fetch(db, [key_hash(made)])
        current = self._value(rows[0][1], rows[0][2]) if rows else None
        if isinstance(current, int) and not isinstance(current, bool):
            raise OverflowError(f"incrementing {key!r} by {amount} leaves the 64-bit range")
        raise TypeError(f"the value of {key!r} is not an integer")

    def rate_limit(self, key: Any, limit: int, window: float, *,
                   version: int | None = None) -> RateLimit:
        """Count a hit in a fixed ``window`` (seconds) allowing ``limit`` hits."""
        limit, window_ms = check_rate_limit(limit, window)
        made, now = self._made(key, version), self._now()
        count, expires = self._increment(key, made, 1, now + window_ms, now, heal=True)
        return RateLimit.from_count(count, limit, (expires or now) - now)

    def expire(self, key: Any, timeout: Any = UNSET, version: int | None = None, *,
               ttl: Any = UNSET) -> bool:
        """Give a key (and its metadata) a new expiry; None removes it. False if missing."""
        if timeout is UNSET:
            timeout = DEFAULT_TIMEOUT if ttl is UNSET else ttl
        elif ttl is not UNSET:
            raise TypeError("pass either timeout or ttl, not both")
        return self.touch(key, timeout, version)

    def expire_at(self, key: Any, when: Any, version: int | None = None) -> bool:
        at = when.timestamp() if hasattr(when, "timestamp") else float(when)
        return self.touch(key, at - self.clock(), version)

    def persist(self, key: Any, version: int | None = None) -> bool:
        """Remove the key's expiry. True if the key exists."""
        return self.touch(key, None, version)

    def pttl(self, key: Any, version: int | None = None) -> int | None:
        """Milliseconds to live; None without expiry; 0 for a missing key (as django-redis)."""
        made, now = self._made(key, version), self._now()
        rows = self.store.fetch(self._db(False), [key_hash(made)], "expires_at_ms")
        if not rows or not self._live(rows[0][0], now):
            return 0
        return None if rows[0][0] is None else rows[0][0] - now

    def ttl(self, key: Any, version: int | None = None) -> int | None:
        """Seconds to live (rounded as Redis rounds); None without expiry; 0 when missing."""
        ms = self.pttl(key, version)
        return None if ms is None else max(0, (ms + 500) // 1000)

    def _pattern(self, pattern: str, version: int | None) -> str:
        version = self.version if version is None else version
        return self.key_func(pattern, glob_escape(self.key_prefix), glob_escape(str(version)))

    def _scan(self, pattern: str) -> list[tuple[str, str | None, int | None]]:
        """(made key, metadata, expires) of live rows matching a Redis glob on the made key."""
        literal = glob_literal_prefix(pattern)
        rows = self.store.scan(self._db(False), _store_key(literal), self._now())
        return [(made, meta, expires) for stored, meta, expires in rows
                if glob_match(pattern, made := _load_key(stored))]

    def keys(self, pattern: str = "*", version: int | None = None, *,
             prefix: str | None = None) -> list[str]:
        """User keys matching the glob ``pattern`` (after the literal ``prefix``)."""
        full = self._pattern((glob_escape(prefix) if prefix else "") + pattern, version)
        return sorted({self.reverse_key(made) for made, _, _ in self._scan(full)})

    def iter_keys(self, search: str, itersize: int | None = None,
                  version: int | None = None) -> Iterator[str]:
        return iter(self.keys(search, version))

    def list(self, prefix: str = "", version: int | None = None) -> list[dict[str, Any]]:
        """``[{"key", "metadata", "ttl"}, ...]`` for the keys starting with ``prefix``."""
        now = self._now()
        entries = {
            self.reverse_key(made): {
                "key": self.reverse_key(made),
                "metadata": load_metadata(meta),
                "ttl": None if expires is None else max(0, (expires - now + 500) // 1000),
            }
            for made, meta, expires in self._scan(self._pattern(glob_escape(prefix) + "*",
                                                                version))
        }
        return [entries[key] for key in sorted(entries)]

    def delete_pattern(self, pattern: str, version: int | None = None,
                       prefix: str | None = None, itersize: int | None = None) -> int:
        """Delete the keys matching a glob (as django-redis's ``delete_pattern``)."""
        version = self.version if version is None else version
        key_prefix = self.key_prefix if prefix is None else prefix
        full = self.key_func(pattern, glob_escape(key_prefix), glob_escape(str(version)))
        hashes = [key_hash(made) for made, _, _ in self._scan(full)]
        return self.store.delete(self._db(True), hashes, self._now())

    def flush(self) -> int:
        """Delete every key of this cache's KEY_PREFIX (any version); nothing else."""
        pattern = self.key_func("*", glob_escape(self.key_prefix), "*")
        hashes = [key_hash(made) for made, _, _ in self._scan(pattern)]
        return self.store.delete(self._db(True), hashes, self._now())
