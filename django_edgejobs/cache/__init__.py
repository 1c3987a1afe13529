"""Edge cache backends: ``RedisEdgeCache`` (django-redis) and ``DatabaseEdgeCache`` (a table).

Both are complete Django cache backends with the same additions (metadata, counters, listings,
namespace flush, rate limits). Importing this package imports neither redis nor the models: the
backends load on first use, so ``DatabaseEdgeCache`` works without redis installed.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .base import RateLimit
from .missing import MissingRedisEdgeCache, redis_extra_missing

__all__ = ["DatabaseEdgeCache", "RateLimit", "RedisEdgeCache"]

_LAZY = {"RedisEdgeCache": ".redis", "DatabaseEdgeCache": ".db"}

if TYPE_CHECKING:  # pragma: no cover
    from .db import DatabaseEdgeCache
    from .redis import RedisEdgeCache


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        value = getattr(import_module(module, __name__), name)
    except ImportError:
        if name != "RedisEdgeCache" or not redis_extra_missing():
            raise
        # Without the [redis] extra: a stand-in that Django can create (so `manage.py check`
        # reports edgejobs.E009 instead of a traceback) and that raises ImproperlyConfigured
        # when used. Not stored in globals(): each access looks for the extra again.
        return MissingRedisEdgeCache
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
