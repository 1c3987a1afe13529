"""The django-redis client half of RedisEdgeCache.

django-redis splits a backend in two: a thin cache class that turns connection errors into
defaults under ``IGNORE_EXCEPTIONS``, and a client class (``OPTIONS["CLIENT_CLASS"]``: default,
herd, sentinel, sharded, or the user's own) that talks to Redis. :func:`edge_client_class` mixes
:class:`EdgeClientMixin` into whichever client is configured, so every django-redis option and
method keeps working and only the methods that touch metadata are replaced.

Each value key ``K`` may have a metadata key (:func:`meta_key`) holding a JSON dict. Every write
that changes the value or its expiry changes the metadata key in the same Lua script.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable, Iterable, Iterator
from functools import wraps
from typing import Any

from django.core.cache.backends.base import (
    DEFAULT_TIMEOUT,
    MEMCACHE_MAX_KEY_LENGTH,
    BaseCache,
    memcached_error_chars_re,
)
from django_redis.client import DefaultClient, ShardClient  # type: ignore[import-untyped]
from django_redis.client.herd import HerdClient  # type: ignore[import-untyped]
from django_redis.exceptions import ConnectionInterrupted  # type: ignore[import-untyped]
from django_redis.util import CacheKey  # type: ignore[import-untyped]
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from . import redis_scripts as lua
from .base import (
    UNSET,
    check_amount,
    check_rate_limit,
    check_ttl,
    dump_metadata,
    glob_escape,
    glob_match,
    load_metadata,
    resolve_timeout,
)

_MEMCACHE_BAD_CHARS = re.compile(memcached_error_chars_re.pattern)  # not lazy: hot path
META_TAG = "__edgemeta__:"
_META_TAG_BYTES = META_TAG.encode()
_ERRORS = (RedisConnectionError, RedisTimeoutError, ResponseError, socket.timeout)


def meta_key(made_key: str) -> str:
    """The metadata key of a value key.

    Outside every KEY_PREFIX (so no listing pattern of the cache matches it) and, when the
    value key carries no braces, wrapped in a hash tag so Redis Cluster and Twemproxy-style
    routing place it in the value key's slot.
    """
    if "{" in made_key or "}" in made_key:
        return META_TAG + made_key
    return f"{META_TAG}{{{made_key}}}"


def value_key_of(meta: str) -> str:
    inner = meta[len(META_TAG):]
    if inner.startswith("{") and inner.endswith("}") and "{" not in inner[1:-1] \
            and "}" not in inner[1:-1]:
        return inner[1:-1]
    return inner


def _interrupts[F: Callable[..., Any]](method: F) -> F:
    """Turn redis errors into django-redis's ConnectionInterrupted (for IGNORE_EXCEPTIONS)."""

    @wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except _ERRORS as exc:
            raise ConnectionInterrupted(connection=None) from exc

    return wrapper  # type: ignore[return-value]


def _text(key: bytes | str) -> str:
    return key.decode() if isinstance(key, bytes) else key


class EdgeClientMixin:
    """Metadata-aware writes, counters, listings and namespace flush for any django-redis client.

    Mixed in front of the configured client class, so ``super()`` is that class.
    """

    _backend: Any
    _sharded = False  # set per generated class by edge_client_class()
    _herd = False

    # --- plumbing ----------------------------------------------------------------------------

    def make_key(self, key: Any, version: int | None = None, prefix: str | None = None) -> Any:
        """django-redis's key, checked with Django's ``validate_key`` (CacheKeyWarning)."""
        if isinstance(key, CacheKey):
            return key
        made = super().make_key(key, version=version, prefix=prefix)  # type: ignore[misc]
        # Django's validate_key only warns for these; skip its generator on the hot path
        # unless a subclass brings its own validation.
        if (len(made) > MEMCACHE_MAX_KEY_LENGTH or _MEMCACHE_BAD_CHARS.search(made)
                or type(self._backend).validate_key is not BaseCache.validate_key):
            self._backend.validate_key(made)
        return made

    def _conn(self, made_key: str, write: bool = True) -> Any:
        if self._sharded:
            return self.get_server(made_key)  # type: ignore[attr-defined]
        return self.get_client(write=write)  # type: ignore[attr-defined]

    def _conns(self) -> list[Any]:
        """One connection per server holding keys (every shard, else the primary)."""
        if self._sharded:
            return list(self._serverdict.values())  # type: ignore[attr-defined]
        return [self.get_client(write=True)]  # type: ignore[attr-defined]

    def _group(self, made_keys: Iterable[str]) -> dict[int, tuple[Any, list[str]]]:
        """Keys grouped by the connection that holds them (one group unless sharded)."""
        groups: dict[int, tuple[Any, list[str]]] = {}
        for made in made_keys:
            conn = self._conn(made)
            groups.setdefault(id(conn), (conn, []))[1].append(made)
        return groups

    def _px(self, timeout: Any) -> int | None:
        """A Django timeout in milliseconds (None: no expiry); the caller handles <= 0."""
        if timeout is DEFAULT_TIMEOUT:
            timeout = self._backend.default_timeout
        return None if timeout is None else int(timeout * 1000)

    def _encode_for_set(self, value: Any, timeout: Any) -> tuple[Any, int | None]:
        """The stored bytes and expiry of ``value``, as this client's ``set()`` would store it."""
        if timeout is DEFAULT_TIMEOUT:
            timeout = self._backend.default_timeout
        if self._herd and timeout is not None and timeout > 0:
            value = self._pack(value, timeout)  # type: ignore[attr-defined]
            timeout = timeout + self._herd_timeout  # type: ignore[attr-defined]
        return self.encode(value), self._px(timeout)  # type: ignore[attr-defined]

    def _pattern(self, pattern: str, version: int | None, prefix: str | None = None) -> str:
        literal = glob_escape(prefix) if prefix else ""
        return self.make_pattern(literal + pattern, version=version)  # type: ignore[attr-defined]

    def _scan(self, match: str, itersize: int | None = None) -> Iterator[list[bytes]]:
        """Pages of value keys matching ``match`` on every server (metadata keys left out)."""
        count = int(itersize or getattr(self._backend, "_default_scan_itersize", 10) or 10)
        for conn in self._conns():
            cursor = 0
            while True:
                cursor, page = conn.scan(cursor=cursor, match=match, count=max(count, 100))
                page = [k for k in page if not k.startswith(_META_TAG_BYTES)]
                if page:
                    yield page
                if cursor == 0:
                    break

    # --- writes ------------------------------------------------------------------------------

    @_interrupts
    def set(self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT,
            version: int | None = None, client: Any = None, nx: bool = False,
            xx: bool = False, *, metadata: dict[str, Any] | None = None,
            ttl: Any = UNSET) -> bool:
        timeout = resolve_timeout(timeout, ttl)
        made = self.make_key(key, version=version)
        if client is not None:
            # An explicit client (often the caller's pipeline): django-redis's own set, then the
            # metadata follows on the same client.
            result = super().set(  # type: ignore[misc]
                made, value, timeout, version=version, client=client, nx=nx, xx=xx)
            self._follow_on(client, made, timeout, metadata)
            return result
        cond = "nx" if nx else "xx" if xx else ""
        encoded, px = self._encode_for_set(value, timeout)
        if px is not None and px <= 0:
            return self._set_many_made({made: value}, timeout, metadata, cond)[0] == 1
        # One key: set_many's script for a single pair.
        args = ["" if px is None else px, cond, "k" if metadata is None else "r",
                "" if metadata is None else dump_metadata(metadata), encoded]
        return lua.SET_ONE(self._conn(made), [made, meta_key(made)], args) == 1

    def _follow_on(self, client: Any, made: str, timeout: Any, metadata: Any) -> None:
        px = self._px(timeout)
        mkey = meta_key(made)
        if px is not None and px <= 0:
            client.delete(mkey)
        elif metadata is not None:
            client.set(mkey, dump_metadata(metadata), px=px)
        elif px is None:
            client.persist(mkey)
        else:
            client.pexpire(mkey, px)

    def _set_many_made(self, data: dict[str, Any], timeout: Any, metadata: Any,
                       cond: str = "") -> list[int]:
        meta = dump_metadata(metadata) if metadata is not None else ""
        encoded = {made: self._encode_for_set(value, timeout) for made, value in data.items()}
        px = next(iter(encoded.values()))[1] if encoded else None
        if px is not None and px <= 0:
            # Django: a timeout <= 0 means "do not keep"; add() then reports whether it could.
            if cond == "nx":
                return [0 if self._conn(made, False).exists(made) else 1 for made in data]
            self._delete_made(list(data))
            return [1] * len(data)
        results: dict[str, int] = {}
        for conn, mades in self._group(data).values():
            keys: list[str] = []
            for made in mades:
                keys += [made, meta_key(made)]
            args = ["" if px is None else px, cond, "r" if metadata is not None else "k", meta]
            args += [encoded[made][0] for made in mades]
            results.update(zip(mades, lua.SET(conn, keys, args), strict=True))
        return [results[made] for made in data]

    @_interrupts
    def add(self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT,
            version: int | None = None, client: Any = None, *,
            metadata: dict[str, Any] | None = None, ttl: Any = UNSET) -> bool:
        return self.set(key, value, timeout, version=version, client=client, nx=True,
                        metadata=metadata, ttl=ttl)

    @_interrupts
    def set_many(self, data: dict[Any, Any], timeout: Any = DEFAULT_TIMEOUT,
                 version: int | None = None, client: Any = None, herd: bool = True, *,
                 metadata: dict[str, Any] | None = None, ttl: Any = UNSET) -> list[Any]:
        """All keys in one script call per server; returns the keys that failed (none)."""
        timeout = resolve_timeout(timeout, ttl)
        if not data:
            return []
        if client is not None:
            for key, value in data.items():
                self.set(key, value, timeout, version=version, client=client, metadata=metadata)
            return []
        made = {self.make_key(key, version=version): value for key, value in data.items()}
        self._set_many_made(made, timeout, metadata)
        return []

    def _delete_made(self, made_keys: list[str]) -> int:
        deleted = 0
        for conn, mades in self._group(made_keys).values():
            pipe = conn.pipeline(transaction=True)
            pipe.delete(*mades)
            pipe.delete(*[meta_key(made) for made in mades])
            deleted += pipe.execute()[0]
        return deleted

    @_interrupts
    def delete(self, key: Any, version: int | None = None, prefix: str | None = None,
               client: Any = None) -> int:
        made = self.make_key(key, version=version, prefix=prefix)
        if client is not None:
            client.delete(meta_key(made))
            return super().delete(made, version=version, client=client)  # type: ignore[misc]
        return self._delete_made([made])

    @_interrupts
    def delete_many(self, keys: Iterable[Any], version: int | None = None,
                    client: Any = None) -> int | None:
        """Django returns None for no keys; otherwise the number of keys deleted."""
        made = [self.make_key(key, version=version) for key in keys]
        if not made:
            return None
        return self._delete_made(made)

    @_interrupts
    def delete_pattern(self, pattern: str, version: int | None = None,
                       prefix: str | None = None, client: Any = None,
                       itersize: int | None = None) -> int:
        deleted = 0
        match = self.make_pattern(pattern, version=version, prefix=prefix)  # type: ignore[attr-defined]
        for page in self._scan(match, itersize):
            deleted += self._delete_made([_text(k) for k in page])
        return deleted

    @_interrupts
    def clear(self, client: Any = None) -> None:
        """django-redis's clear: FLUSHDB (metadata keys go with it). See ``flush()``."""
        return super().clear(**({"client": client} if client else {}))  # type: ignore[misc]

    # --- expiry ------------------------------------------------------------------------------

    def _expiry(self, key: Any, version: int | None, op: str, number: Any = "") -> bool:
        made = self.make_key(key, version=version)
        return bool(lua.EXPIRY(self._conn(made), [made, meta_key(made)], [op, number]))

    @_interrupts
    def expire(self, key: Any, timeout: Any = UNSET, version: int | None = None,
               client: Any = None, *, ttl: Any = UNSET) -> bool:
        """Give a key (and its metadata) a new expiry; None removes it. False if missing."""
        if timeout is UNSET:
            timeout = DEFAULT_TIMEOUT if ttl is UNSET else ttl
        elif ttl is not UNSET:
            raise TypeError("pass either timeout or ttl, not both")
        if hasattr(timeout, "total_seconds"):
            timeout = timeout.total_seconds()
        px = self._px(timeout)
        if px is None:
            return self._expiry(key, version, "persist")
        return self._expiry(key, version, "px", px)

    @_interrupts
    def pexpire(self, key: Any, timeout: Any, version: int | None = None,
                client: Any = None) -> bool:
        if timeout is DEFAULT_TIMEOUT:
            timeout = self._backend.default_timeout
        if hasattr(timeout, "total_seconds"):
            timeout = timeout.total_seconds() * 1000
        return self._expiry(key, version, "px", int(timeout))

    @_interrupts
    def expire_at(self, key: Any, when: Any, version: int | None = None,
                  client: Any = None) -> bool:
        at_ms = int(when.timestamp() * 1000) if hasattr(when, "timestamp") else int(when) * 1000
        return self._expiry(key, version, "pxat", at_ms)

    @_interrupts
    def pexpire_at(self, key: Any, when: Any, version: int | None = None,
                   client: Any = None) -> bool:
        at_ms = int(when.timestamp() * 1000) if hasattr(when, "timestamp") else int(when)
        return self._expiry(key, version, "pxat", at_ms)

    @_interrupts
    def persist(self, key: Any, version: int | None = None, client: Any = None) -> bool:
        """Remove the key's expiry (and its metadata's). True if the key exists."""
        return self._expiry(key, version, "persist")

    @_interrupts
    def touch(self, key: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None,
              client: Any = None) -> bool:
        if self._herd:  # herd re-packs the value: let it, then follow
            made = self.make_key(key, version=version)
            result = super().touch(made, timeout, version=version)  # type: ignore[misc]
            lua.SYNC(self._conn(made), [made, meta_key(made)], [])
            return result
        px = self._px(timeout)
        if px is None:
            return self._expiry(key, version, "persist")
        return self._expiry(key, version, "px", px)

    @_interrupts
    def incr_version(self, key: Any, delta: int = 1, version: int | None = None,
                     client: Any = None) -> int:
        """Move the value and its metadata to ``version + delta``, keeping the expiry."""
        if version is None:
            version = self._backend.version
        old = self.make_key(key, version=version)
        original = old.original_key() if isinstance(key, CacheKey) else key
        new = self.make_key(original, version=version + delta)
        old_conn, new_conn = self._conn(old), self._conn(new)
        if old_conn is new_conn:
            moved = lua.RENAME(old_conn, [old, meta_key(old), new, meta_key(new)], [])
            if not moved:
                raise ValueError(f"Key '{key!r}' not found")
            return version + delta
        # Sharded across servers: copy, then delete (not atomic, as in django-redis).
        value, metadata = self.get(old), self.get_metadata(old)  # type: ignore[attr-defined]
        if value is None and not old_conn.exists(old):
            raise ValueError(f"Key '{key!r}' not found")
        ms = old_conn.pttl(old)
        self._set_many_made({new: value}, None if ms < 0 else ms / 1000, metadata)
        self._delete_made([old])
        return version + delta

    # --- reads -------------------------------------------------------------------------------

    @_interrupts
    def get_metadata(self, key: Any, version: int | None = None) -> dict[str, Any] | None:
        made = self.make_key(key, version=version)
        pipe = self._conn(made, write=False).pipeline(transaction=True)
        pipe.exists(made)
        pipe.get(meta_key(made))
        exists, raw = pipe.execute()
        return load_metadata(raw) if exists else None

    @_interrupts
    def keys(self, pattern: str = "*", version: int | None = None, client: Any = None, *,
             prefix: str | None = None) -> list[str]:
        """User keys matching the glob ``pattern`` (after the literal ``prefix``), by SCAN."""
        found = {self.reverse_key(_text(k))  # type: ignore[attr-defined]
                 for page in self._scan(self._pattern(pattern, version, prefix)) for k in page}
        return sorted(found)

    @_interrupts
    def iter_keys(self, search: str, itersize: int | None = None, client: Any = None,
                  version: int | None = None) -> Iterator[str]:
        if self._sharded:
            raise NotImplementedError("iter_keys not supported on sharded client")
        conn = client or self.get_client(write=False)  # type: ignore[attr-defined]
        pattern = self.make_pattern(search, version=version)  # type: ignore[attr-defined]
        for item in conn.scan_iter(match=pattern, count=itersize):
            if not item.startswith(_META_TAG_BYTES):
                yield self.reverse_key(_text(item))  # type: ignore[attr-defined]

    @_interrupts
    def list_entries(self, prefix: str = "", version: int | None = None) -> list[dict[str, Any]]:
        entries = []
        for page in self._scan(self._pattern("*", version, prefix)):
            conn = self._conn(_text(page[0]), write=False)
            pipe = conn.pipeline(transaction=False)
            for raw in page:
                made = _text(raw)
                pipe.pttl(made)
                pipe.get(meta_key(made))
            replies = pipe.execute()
            for i, raw in enumerate(page):
                ms, meta = replies[2 * i], replies[2 * i + 1]
                if ms == -2:
                    continue  # expired between SCAN and PTTL
                entries.append({
                    "key": self.reverse_key(_text(raw)),  # type: ignore[attr-defined]
                    "metadata": load_metadata(meta),
                    "ttl": None if ms == -1 else max(0, (ms + 500) // 1000),
                })
        unique = {entry["key"]: entry for entry in entries}
        return [unique[key] for key in sorted(unique)]

    # --- namespace ---------------------------------------------------------------------------

    def namespace_pattern(self) -> str:
        """Every key of this cache's KEY_PREFIX, any version."""
        return self._backend.key_func("*", glob_escape(self._backend.key_prefix), "*")

    @_interrupts
    def flush(self) -> int:
        """Delete this cache's keys (its KEY_PREFIX) and their metadata; nothing else."""
        pattern = self.namespace_pattern()
        deleted = 0
        for page in self._scan(pattern):
            deleted += self._delete_made([_text(k) for k in page])
        # Metadata whose value is gone (evicted, deleted behind the cache's back).
        for conn in self._conns():
            orphans = [m for m in conn.scan_iter(match=glob_escape(META_TAG) + "*", count=500)
                       if glob_match(pattern, value_key_of(_text(m)))]
            if orphans:
                conn.delete(*orphans)
        return deleted

    # --- counters ----------------------------------------------------------------------------

    def _increment(self, key: Any, amount: int, px: int | None, must_exist: bool,
                   heal: bool, version: int | None) -> tuple[int, int] | None:
        made = self.make_key(key, version=version)
        conn = self._conn(made)
        args = [amount, "" if px is None else px, "1" if must_exist else "0", "1" if heal else "0"]
        try:
            reply = lua.INCREMENT(conn, [made, meta_key(made)], args)
        except ResponseError as exc:
            if "integer" not in str(exc) and "overflow" not in str(exc):
                raise
            current = self.get(made)  # type: ignore[attr-defined]
            if isinstance(current, int) and not isinstance(current, bool):
                raise OverflowError(
                    f"incrementing {key!r} by {amount} leaves the 64-bit range") from None
            raise TypeError(f"the value of {key!r} is not an integer") from None
        if reply is None:
            return None
        return int(reply[0]), int(reply[1])

    @_interrupts
    def increment(self, key: Any, amount: int = 1, *, ttl: float | None = None,
                  version: int | None = None) -> int:
        """Atomic ``+= amount``; a missing key is created with ``amount`` and ``ttl``."""
        amount = check_amount(amount)
        ttl = check_ttl(ttl)
        px = None if ttl is None else max(1, int(ttl * 1000))
        reply = self._increment(key, amount, px, False, False, version)
        assert reply is not None
        return reply[0]

    @_interrupts
    def rate_limit(self, key: Any, limit: int, window: float,
                   version: int | None = None) -> tuple[int, int]:
        """(count, ms until the window ends) after counting one hit."""
        _, window_ms = check_rate_limit(limit, window)
        reply = self._increment(key, 1, window_ms, False, True, version)
        assert reply is not None
        return reply


_SORTED_SET_METHODS = ("zadd", "zcard", "zcount", "zincrby", "zpopmax", "zpopmin", "zrange",
                       "zrangebyscore", "zrank", "zrem", "zremrangebyscore", "zrevrange",
                       "zrevrangebyscore", "zscore")


def _routed(name: str) -> Callable[..., Any]:
    def method(self: Any, key: Any, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("client") is None:
            kwargs["client"] = self.get_server(self.make_key(key, version=kwargs.get("version")))
        return getattr(super(ShardRouting, self), name)(key, *args, **kwargs)

    method.__name__ = name
    return method


class ShardRouting:
    """Sorted-set methods for ShardClient, routed to the key's server (django-redis's own
    ShardClient inherits them unrouted, and they fail with NotImplementedError)."""

    locals().update({name: _routed(name) for name in _SORTED_SET_METHODS})


_CLASSES: dict[type, type] = {}


def edge_client_class(client_cls: type) -> type:
    """``client_cls`` with :class:`EdgeClientMixin` in front (cached per class)."""
    if issubclass(client_cls, EdgeClientMixin):
        return client_cls
    if not issubclass(client_cls, DefaultClient):
        raise TypeError(f"{client_cls!r} is not a django-redis client class")
    if client_cls not in _CLASSES:
        sharded = issubclass(client_cls, ShardClient)
        bases = (EdgeClientMixin, ShardRouting, client_cls) if sharded else (
            EdgeClientMixin, client_cls)
        _CLASSES[client_cls] = type(f"Edge{client_cls.__name__}", bases, {
            "__module__": __name__, "_sharded": sharded,
            "_herd": issubclass(client_cls, HerdClient)})
    return _CLASSES[client_cls]
