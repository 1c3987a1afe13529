"""DatabaseEdgeCache beyond the shared contract: atomicity across processes, culling,
keyspaces, query counts (SQLite by default, PostgreSQL with DATABASE_URL)."""

from __future__ import annotations

import pytest
from django.db import connections

from django_edgejobs.cache import DatabaseEdgeCache
from django_edgejobs.models import CacheEntry

from . import spawned
from .conftest import Clock, make_db_cache

pytestmark = pytest.mark.django_db


@pytest.mark.django_db(transaction=True)
def test_increments_are_atomic_across_processes() -> None:
    cache = make_db_cache()
    cache.set("seen", 0, None)
    connections.close_all()  # children open their own connections
    procs = spawned.processes("tests.cache.test_db:_hammer", (cache.key_prefix, 50), 4)
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
    assert [proc.exitcode for proc in procs] == [0] * 4
    assert cache.get("hits") == 200
    assert cache.get("seen") == 200
    assert 50 <= cache.ttl("hits") <= 60
    limits = [cache.rate_limit("rl", 1000, 60).count for _ in range(3)]
    assert limits == [201, 202, 203]
    cache.flush()


def _hammer(prefix: str, times: int) -> None:
    cache = DatabaseEdgeCache("", {"KEY_PREFIX": prefix})
    for _ in range(times):
        cache.increment("hits", ttl=60)
        cache.incr("seen")
        cache.rate_limit("rl", 1000, 60)
    connections.close_all()


def test_cull_follows_django_database_cache() -> None:
    cache = make_db_cache(OPTIONS={"MAX_ENTRIES": 10, "CULL_FREQUENCY": 2})
    for i in range(15):
        cache.set(f"k{i}", i)
    remaining = [key for key in (f"k{i}" for i in range(15)) if cache.has_key(key)]
    assert len(remaining) < 15
    assert "k14" in remaining  # the oldest rows go first


def test_expired_rows_are_culled_first() -> None:
    cache = make_db_cache(OPTIONS={"MAX_ENTRIES": 5})
    cache.clock = clock = Clock()
    for i in range(5):
        cache.set(f"old{i}", i, 10)
    clock.advance(20)
    cache.set("new", 1)
    cache.set("new2", 1)
    assert CacheEntry.objects.filter(location="").count() == 2


def test_without_max_entries_expired_rows_are_culled_on_demand() -> None:
    cache = make_db_cache(OPTIONS={"MAX_ENTRIES": None})
    cache.clock = clock = Clock()
    for i in range(400):  # more than Django's default 300: no size limit
        cache.set(f"k{i}", i, 10 if i % 2 else None)
    assert len(cache.keys()) == 400
    clock.advance(20)
    assert cache.cull_expired() == 200
    assert CacheEntry.objects.count() == 200


def test_locations_are_separate_keyspaces() -> None:
    first, second = make_db_cache(LOCATION="one"), make_db_cache(LOCATION="two")
    second.key_prefix = first.key_prefix
    first.set("k", 1, metadata={"m": 1})
    second.set("k", 2)
    first.clear()
    assert first.get("k") is None
    assert second.get("k") == 2
    assert second.get_metadata("k") is None


def test_readers_delete_expired_rows() -> None:
    cache = make_db_cache()
    cache.clock = clock = Clock()
    cache.set("k", 1, 10, metadata={"m": 1})
    clock.advance(11)
    assert cache.get("k") is None
    assert not CacheEntry.objects.exists()


def test_statements_per_call(django_assert_num_queries: object) -> None:
    cache = make_db_cache(OPTIONS={"MAX_ENTRIES": None, "CULL_INTERVAL": 3600})
    cache.set("warm", 1)  # the first write also culls expired rows
    data = {f"k{i}": i for i in range(100)}
    with django_assert_num_queries(1):  # type: ignore[operator]
        cache.set_many(data, metadata={"m": 1})
    with django_assert_num_queries(1):  # type: ignore[operator]
        assert cache.get_many(list(data)) == data
    with django_assert_num_queries(1):  # type: ignore[operator]
        cache.increment("counter", ttl=10)
    with django_assert_num_queries(1):  # type: ignore[operator]
        cache.rate_limit("rl", 5, 10)
    with django_assert_num_queries(1):  # type: ignore[operator]
        cache.delete_many(list(data))


def test_values_keep_their_types() -> None:
    cache = make_db_cache()
    values = [True, 2**70, -(2**63), 1.5, b"\x00bytes", None, ("t",), {"d": [1]}]
    for i, value in enumerate(values):
        cache.set(f"v{i}", value)
    assert [cache.get(f"v{i}", "missing") for i in range(len(values))] == values
    assert cache.incr("v1") == 2**70 + 1  # beyond 64 bits: Django's generic (non-atomic) path
    assert cache.incr("v3", 1) == 2.5
