"""RedisEdgeCache: django-redis's ``RedisCache`` plus the edge-cache contract.

Configure it exactly like django-redis (``LOCATION``, ``KEY_PREFIX``, ``OPTIONS`` with
``CLIENT_CLASS``, ``SERIALIZER``, ``COMPRESSOR``, ``SENTINELS``, ``IGNORE_EXCEPTIONS``, ...).
The work happens in the client (see :mod:`.redis_client`); this class only adds the new
methods behind django-redis's ``omit_exception`` so they honour ``IGNORE_EXCEPTIONS`` too.
"""

from __future__ import annotations

from typing import Any

try:
    import redis  # noqa: F401  (django_redis.cache does not import it; its clients do)
    from django_redis.cache import RedisCache, omit_exception  # type: ignore[import-untyped]
except ImportError as exc:  # the [redis] extra is missing: django-redis, or redis
    from .missing import missing_message

    raise ImportError(missing_message(exc)) from exc

from .base import EdgeCacheMixin, RateLimit, check_rate_limit
from .redis_client import edge_client_class

__all__ = ["RedisEdgeCache"]


class RedisEdgeCache(EdgeCacheMixin, RedisCache):
    """A django-redis cache with per-key metadata, counters, listings and rate limits."""

    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._client_cls: type = edge_client_class(self._client_cls)

    # set/add/set_many/delete*/touch/expire*/persist/keys/iter_keys/incr_version come from
    # RedisCache, which passes every argument through to the (edge) client.

    @omit_exception
    def get_metadata(self, key: Any, version: int | None = None) -> dict[str, Any] | None:
        """The metadata dict stored with ``key``, or None (no key, or no metadata)."""
        return self.client.get_metadata(key, version=version)

    @omit_exception(return_value=False)
    def has_key(self, *args: Any, **kwargs: Any) -> bool:
        return self.client.has_key(*args, **kwargs)

    @omit_exception
    def increment(self, key: Any, amount: int = 1, *, ttl: float | None = None,
                  version: int | None = None) -> int:
        """Atomically add ``amount``; a missing key is created with it, expiring after ``ttl``
        seconds (``ttl`` only applies when this call creates the key)."""
        return self.client.increment(key, amount, ttl=ttl, version=version)

    @omit_exception(return_value=[])
    def keys(self, *args: Any, **kwargs: Any) -> list[str]:
        """``keys(pattern="*", *, prefix=None)``: user keys by SCAN; ``prefix`` is literal."""
        return self.client.keys(*args, **kwargs)

    @omit_exception(return_value=[])
    def list(self, prefix: str = "", version: int | None = None) -> list[dict[str, Any]]:
        """``[{"key", "metadata", "ttl"}, ...]`` for the keys starting with ``prefix``."""
        return self.client.list_entries(prefix, version=version)

    @omit_exception(return_value=0)
    def flush(self) -> int:
        """Delete every key of this cache's KEY_PREFIX (any version) and its metadata."""
        return self.client.flush()

    def rate_limit(self, key: Any, limit: int, window: float, *,
                   version: int | None = None) -> RateLimit:
        """Count a hit in a fixed ``window`` (seconds) allowing ``limit`` hits.

        Under ``IGNORE_EXCEPTIONS`` an unreachable Redis lets the hit through (fails open).
        """
        limit, window_ms = check_rate_limit(limit, window)
        reply = self._rate_limit(key, limit, window, version)
        if reply is None:  # Redis unreachable and IGNORE_EXCEPTIONS
            return RateLimit(True, 0, limit, window_ms / 1000)
        count, ms = reply
        return RateLimit.from_count(count, limit, ms)

    @omit_exception
    def _rate_limit(self, key: Any, limit: int, window: float,
                    version: int | None) -> tuple[int, int]:
        return self.client.rate_limit(key, limit, window, version=version)
