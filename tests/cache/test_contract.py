"""The contract suite on both backends (Redis: the real server, else fakeredis)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import REAL_REDIS, make_db_cache, make_redis_cache
from .contract import EdgeCacheContract


class TestRedisEdgeCache(EdgeCacheContract):
    backend = "redis" if REAL_REDIS else "fakeredis"

    @pytest.fixture
    def cache(self, redis_cache: Any) -> Any:
        return redis_cache

    @pytest.fixture
    def other_cache(self) -> Iterator[Any]:
        cache = make_redis_cache()
        yield cache
        cache.flush()

    def advance(self, cache: Any, seconds: float) -> None:
        time.sleep(seconds)


class TestDatabaseEdgeCache(EdgeCacheContract):
    @pytest.fixture
    def cache(self, db_cache: Any) -> Any:
        return db_cache

    @pytest.fixture
    def other_cache(self, db_cache: Any) -> Any:
        other = make_db_cache()
        other.clock = db_cache.clock
        return other

    def advance(self, cache: Any, seconds: float) -> None:
        cache.clock.advance(seconds)
