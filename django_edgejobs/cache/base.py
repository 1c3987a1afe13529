"""The contract shared by both edge cache backends.

Everything here is backend-neutral: argument checking, the ``ttl``/``timeout`` alias, the
metadata codec, Redis-compatible glob patterns (the database backend matches keys with the
same rules Redis's ``SCAN MATCH`` uses) and the async twins. ``RedisEdgeCache`` and
``DatabaseEdgeCache`` both inherit :class:`EdgeCacheMixin`, and one test suite
(``tests/cache/contract.py``) holds them to identical behaviour.
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any, NamedTuple

from asgiref.sync import sync_to_async
from django.core.cache.backends.base import DEFAULT_TIMEOUT

__all__ = [
    "UNSET",
    "EdgeCacheMixin",
    "RateLimit",
    "default_reverse_key",
    "dump_metadata",
    "glob_escape",
    "glob_literal_prefix",
    "glob_match",
    "load_metadata",
]


class _Unset:
    """Marks an argument that was not passed (``None`` is a meaningful ``ttl``)."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()

# The largest and smallest values an atomic counter may hold: Redis's INCRBY and the database's
# BIGINT column both stop at a signed 64-bit integer.
INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)


class RateLimit(NamedTuple):
    """Outcome of one ``rate_limit()`` call (a fixed window that opens on the first hit)."""

    allowed: bool
    """True while ``count <= limit``."""
    count: int  # type: ignore[assignment]  # the contract's name; shadows tuple.count
    """Hits in the current window, this one included."""
    remaining: int
    """Hits left in the window (never negative)."""
    reset_after: float
    """Seconds until the window closes and the count starts again."""

    @classmethod
    def from_count(cls, count: int, limit: int, reset_after_ms: int) -> RateLimit:
        return cls(count <= limit, count, max(0, limit - count), max(0, reset_after_ms) / 1000)


def default_reverse_key(key: str) -> str:
    """Undo Django's default key function (``prefix:version:key``), as django-redis does."""
    return key.split(":", 2)[2]


# --- arguments -------------------------------------------------------------------------------

def resolve_timeout(timeout: Any, ttl: Any) -> Any:
    """``ttl`` is an alias of ``timeout``: pass one of them, never both."""
    if ttl is UNSET:
        return timeout
    if timeout is not DEFAULT_TIMEOUT:
        raise TypeError("pass either timeout or ttl, not both")
    return ttl


def check_amount(amount: Any) -> int:
    if isinstance(amount, bool):
        raise TypeError("amount must be an integer, not a bool")
    try:
        return operator.index(amount)
    except TypeError:
        raise TypeError(f"amount must be an integer, not {type(amount).__name__}") from None


def check_ttl(ttl: Any, name: str = "ttl") -> float | None:
    """A TTL for the new counter methods: None (no expiry) or a positive number of seconds."""
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, int | float):
        raise TypeError(f"{name} must be a number of seconds or None")
    if ttl <= 0:
        raise ValueError(f"{name} must be positive, got {ttl!r}")
    return ttl


def check_rate_limit(limit: Any, window: Any) -> tuple[int, int]:
    """Validate ``rate_limit()`` arguments; return (limit, window in milliseconds)."""
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise ValueError(f"limit must be a positive integer, got {limit!r}")
    if limit <= 0:
        raise ValueError(f"limit must be a positive integer, got {limit!r}")
    if isinstance(window, bool) or not isinstance(window, int | float) or window <= 0:
        raise ValueError(f"window must be a positive number of seconds, got {window!r}")
    return limit, max(1, int(window * 1000))


def ms_to_ttl(ms: int | None) -> int | None:
    """Milliseconds left -> whole seconds, rounded as Redis's TTL command rounds."""
    if ms is None:
        return None
    return max(0, (ms + 500) // 1000)


# --- metadata --------------------------------------------------------------------------------

def dump_metadata(metadata: Any) -> str:
    """Encode metadata (a JSON-serialisable dict) for storage beside the value."""
    if not isinstance(metadata, dict):
        raise TypeError(f"metadata must be a dict, not {type(metadata).__name__}")
    try:
        return json.dumps(metadata, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"metadata is not JSON-serialisable: {exc}") from exc


def load_metadata(raw: str | bytes | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    if isinstance(raw, bytes | bytearray | memoryview):
        raw = bytes(raw).decode()
    return json.loads(raw)


# --- Redis glob patterns ---------------------------------------------------------------------

_GLOB_SPECIAL = re.compile(r"([*?\[\]\\])")


def glob_escape(text: str) -> str:
    """Escape ``text`` so a Redis glob matches it literally (``keys(prefix=...)``)."""
    return _GLOB_SPECIAL.sub(r"\\\1", text)


def glob_literal_prefix(pattern: str) -> str:
    """The literal text every match of ``pattern`` starts with (to narrow a SQL query)."""
    out = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char in "*?[":
            break
        if char == "\\" and i + 1 < len(pattern):
            i += 1
            char = pattern[i]
        out.append(char)
        i += 1
    return "".join(out)


@lru_cache(maxsize=256)
def _glob_regex(pattern: str) -> re.Pattern[str]:
    """Translate a Redis glob (``stringmatchlen`` in util.c) to a regular expression."""
    out = []
    i, n = 0, len(pattern)
    while i < n:
        char = pattern[i]
        if char == "*":
            out.append(".*")
        elif char == "?":
            out.append(".")
        elif char == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i]))
        elif char == "[":
            i += 1
            negate = i < n and pattern[i] == "^"
            if negate:
                i += 1
            parts = []
            while i < n and pattern[i] != "]":
                if pattern[i] == "\\" and i + 1 < n:
                    i += 1
                    parts.append(re.escape(pattern[i]))
                elif i + 2 < n and pattern[i + 1] == "-" and pattern[i + 2] != "]":
                    low, high = sorted((pattern[i], pattern[i + 2]))
                    parts.append(f"{re.escape(low)}-{re.escape(high)}")
                    i += 2
                else:
                    parts.append(re.escape(pattern[i]))
                i += 1
            body = "".join(parts)
            if not body:
                out.append("[^\\s\\S]" if not negate else "[\\s\\S]")
            else:
                out.append(f"[{'^' if negate else ''}{body}]")
        else:
            out.append(re.escape(char))
        i += 1
    return re.compile("".join(out) + r"\Z", re.DOTALL)


def glob_match(pattern: str, text: str) -> bool:
    return _glob_regex(pattern).match(text) is not None


# --- the shared surface ----------------------------------------------------------------------

def _async_twin(name: str) -> Callable[..., Any]:
    async def twin(self: Any, *args: Any, **kwargs: Any) -> Any:
        return await sync_to_async(getattr(self, name), thread_sensitive=True)(*args, **kwargs)

    twin.__name__ = twin.__qualname__ = f"a{name}"
    twin.__doc__ = f"Async twin of ``{name}()`` (runs it in Django's sync thread)."
    return twin


class EdgeCacheMixin:
    """Methods that read the same on both backends; the backends provide the primitives."""

    def has(self, key: Any, version: int | None = None) -> bool:
        """Alias of ``has_key``."""
        return self.has_key(key, version=version)  # type: ignore[attr-defined]

    def decrement(self, key: Any, amount: int = 1, *, ttl: float | None = None,
                  version: int | None = None) -> int:
        """``increment(key, -amount)``: atomic, creates a missing key with ``-amount``."""
        return self.increment(  # type: ignore[attr-defined]
            key, -check_amount(amount), ttl=ttl, version=version)

    # Async twins of every method (BaseCache already has aget, adelete, aget_many, ...; the
    # ones below are replaced so they accept the new keyword arguments).
    aset = _async_twin("set")
    aadd = _async_twin("add")
    aset_many = _async_twin("set_many")
    atouch = _async_twin("touch")
    aget_metadata = _async_twin("get_metadata")
    ahas = _async_twin("has")
    aincrement = _async_twin("increment")
    adecrement = _async_twin("decrement")
    aexpire = _async_twin("expire")
    attl = _async_twin("ttl")
    apersist = _async_twin("persist")
    akeys = _async_twin("keys")
    alist = _async_twin("list")
    aflush = _async_twin("flush")
    arate_limit = _async_twin("rate_limit")
    adelete_pattern = _async_twin("delete_pattern")
