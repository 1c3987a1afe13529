"""Fixtures for the edge cache tests: both backends, each in its own namespace.

Redis is the server at ``REDIS_URL``; when it does not answer (or ``EDGEJOBS_CACHE_FAKEREDIS=1``)
the same tests run on fakeredis (with Lua, through ``lupa``). Every test gets a fresh KEY_PREFIX
and ``flush()``es it afterwards, so nothing else in the Redis database is touched.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.conf import settings

from django_edgejobs.cache import DatabaseEdgeCache, RedisEdgeCache

_fake_server: Any = None


def redis_server_available() -> bool:
    if os.environ.get("EDGEJOBS_CACHE_FAKEREDIS") == "1":
        return False
    import redis

    try:
        return bool(redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=0.5,
                                         socket_timeout=0.5).ping())
    except redis.RedisError:
        return False


REAL_REDIS = redis_server_available()


def redis_params(**extra: Any) -> dict[str, Any]:
    """Cache params for RedisEdgeCache on the real server, or on a shared fakeredis."""
    global _fake_server
    options = dict(extra.pop("OPTIONS", {}))
    params: dict[str, Any] = {"KEY_PREFIX": f"edgetest-{uuid.uuid4().hex[:10]}", **extra}
    if not REAL_REDIS:
        import fakeredis

        if _fake_server is None:
            _fake_server = fakeredis.FakeServer()
        options.setdefault("CONNECTION_POOL_KWARGS", {
            "connection_class": fakeredis.FakeRedisConnection, "server": _fake_server})
    params["OPTIONS"] = options
    return params


def make_redis_cache(**extra: Any) -> RedisEdgeCache:
    params = redis_params(**extra)
    return RedisEdgeCache(params.pop("LOCATION", settings.REDIS_URL), params)


def make_db_cache(**extra: Any) -> DatabaseEdgeCache:
    extra.setdefault("KEY_PREFIX", f"edgetest-{uuid.uuid4().hex[:10]}")
    return DatabaseEdgeCache(extra.pop("LOCATION", ""), extra)


class Clock:
    """A settable clock for DatabaseEdgeCache (time is a parameter, not a sleep)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def redis_cache() -> Iterator[RedisEdgeCache]:
    cache = make_redis_cache()
    yield cache
    cache.flush()


@pytest.fixture
def db_cache(db: None) -> Iterator[DatabaseEdgeCache]:
    cache = make_db_cache()
    cache.clock = Clock()
    yield cache


@pytest.fixture
def redis_factory() -> Iterator[Callable[..., RedisEdgeCache]]:
    made: list[RedisEdgeCache] = []

    def factory(**extra: Any) -> RedisEdgeCache:
        made.append(make_redis_cache(**extra))
        return made[-1]

    yield factory
    for cache in made:
        with contextlib.suppress(Exception):  # some point at a dead server on purpose
            cache.flush()
