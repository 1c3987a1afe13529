"""What ``RedisEdgeCache`` becomes when the ``[redis]`` extra (django-redis, redis) is missing.

Django instantiates every configured cache during ``manage.py check`` (its
``check_file_based_cache_is_absolute``), before the app's own check ``edgejobs.E009`` can say
what is wrong. Failing the import there ends ``check`` in an ``InvalidCacheBackendError``
traceback. So ``django_edgejobs.cache.RedisEdgeCache`` resolves to :class:`MissingRedisEdgeCache`
instead: it can be created, ``check`` reports ``edgejobs.E009``, and any use of the cache raises
``ImproperlyConfigured`` naming the extra to install.
"""

from __future__ import annotations

from typing import Any, NoReturn

from django.core.cache.backends.base import BaseCache
from django.core.exceptions import ImproperlyConfigured

INSTALL_HINT = ("pip install 'django-edgejobs[redis]' (it installs django-redis, redis and "
                "hiredis), or use django_edgejobs.cache.DatabaseEdgeCache, which needs no Redis")


def redis_extra_missing() -> bool:
    """True when django-redis or redis cannot be imported."""
    import importlib.util

    return any(importlib.util.find_spec(name) is None for name in ("django_redis", "redis"))


def missing_message(reason: object = None) -> str:
    why = f" ({reason})" if reason else ""
    return (f"django_edgejobs.cache.RedisEdgeCache needs the [redis] extra, which is not "
            f"installed{why}: {INSTALL_HINT}")


class MissingRedisEdgeCache(BaseCache):
    """Stands in for RedisEdgeCache without the ``[redis]`` extra: creating it works, using it
    raises ``ImproperlyConfigured`` (methods of Django's cache API) or ``AttributeError`` (the
    rest), both naming the extra."""

    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(params)
        self._location = server

    # BaseCache builds the rest of Django's API (get_many, incr, has_key, the async twins, ...)
    # on these six, so they all raise. close() stays BaseCache's no-op: Django calls it after
    # every request on each cache that was created.
    def add(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise ImproperlyConfigured(missing_message())

    def get(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise ImproperlyConfigured(missing_message())

    def set(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise ImproperlyConfigured(missing_message())

    def touch(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise ImproperlyConfigured(missing_message())

    def delete(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise ImproperlyConfigured(missing_message())

    def clear(self) -> NoReturn:
        raise ImproperlyConfigured(missing_message())

    def __getattr__(self, name: str) -> Any:
        # Only for names BaseCache lacks (increment, get_metadata, list, ...). AttributeError,
        # so getattr(cache, name, default) still works.
        raise AttributeError(f"RedisEdgeCache.{name} is unavailable: {missing_message()}")
