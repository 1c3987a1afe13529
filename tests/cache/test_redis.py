"""RedisEdgeCache beyond the shared contract: django-redis compatibility, storage layout,
round trips, namespace safety, failure behaviour."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from django.conf import settings
from django_redis.cache import RedisCache
from django_redis.client import DefaultClient, HerdClient, ShardClient

from django_edgejobs.cache import RedisEdgeCache
from django_edgejobs.cache.redis_client import meta_key

from . import spawned
from .conftest import REAL_REDIS, make_redis_cache

Factory = Callable[..., RedisEdgeCache]


def raw(cache: RedisEdgeCache) -> Any:
    return cache.client.get_client(write=True)


def test_is_a_django_redis_cache_with_its_client(redis_cache: RedisEdgeCache) -> None:
    assert isinstance(redis_cache, RedisCache)
    assert isinstance(redis_cache.client, DefaultClient)
    redis_cache.sadd("set", "a", "b")  # django-redis's own methods keep working
    assert redis_cache.smembers("set") == {"a", "b"}
    with redis_cache.lock("lock", timeout=5):
        assert redis_cache.has_key("lock")


def test_metadata_sits_beside_the_value_with_the_same_expiry(redis_cache: RedisEdgeCache) -> None:
    redis_cache.set("k", "v", 100, metadata={"m": 1})
    made = redis_cache.client.make_key("k")
    conn = raw(redis_cache)
    assert conn.get(meta_key(made)) == b'{"m":1}'
    assert abs(conn.pttl(made) - conn.pttl(meta_key(made))) < 50
    redis_cache.persist("k")
    assert conn.pttl(meta_key(made)) == -1
    redis_cache.delete("k")
    assert not conn.exists(meta_key(made))


def test_set_many_and_get_many_are_one_round_trip(redis_cache: RedisEdgeCache,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    if not REAL_REDIS:
        pytest.skip("counts socket writes of a real connection")
    sends: list[int] = []
    original = redis.connection.AbstractConnection.send_packed_command

    def counting(self: Any, command: Any, check_health: bool = True) -> None:
        sends.append(1)
        original(self, command, check_health)

    data = {f"k{i}": i for i in range(100)}
    redis_cache.set("warm", 1)  # connect and load the script outside the count
    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counting)
    redis_cache.set_many(data, metadata={"batch": 1})
    assert len(sends) == 1
    sends.clear()
    assert redis_cache.get_many(list(data)) == data
    assert len(sends) == 1


def test_flush_leaves_other_data_alone(redis_cache: RedisEdgeCache) -> None:
    conn = raw(redis_cache)
    outside = f"not-a-cache-key:{redis_cache.key_prefix}"
    conn.set(outside, "x", ex=60)
    redis_cache.set("a", 1, metadata={"m": 1})
    # Metadata left behind by a value deleted outside the cache is flushed too.
    redis_cache.set("orphan", 1, metadata={"m": 1})
    conn.delete(redis_cache.client.make_key("orphan"))
    try:
        assert redis_cache.flush() == 1
        assert conn.get(outside) == b"x"
        assert conn.keys(f"*{redis_cache.key_prefix}*") == [outside.encode()]
    finally:
        conn.delete(outside)


@pytest.mark.parametrize("options", [
    {"SERIALIZER": "django_redis.serializers.json.JSONSerializer"},
    {"COMPRESSOR": "django_redis.compressors.zlib.ZlibCompressor"},
    {"CLIENT_CLASS": "django_redis.client.HerdClient"},
], ids=["json", "zlib", "herd"])
def test_contract_basics_under_django_redis_options(redis_factory: Factory,
                                                    options: dict[str, Any]) -> None:
    cache = redis_factory(OPTIONS=options)
    value = {"a": [1, 2], "b": "x" * 2000}
    cache.set("k", value, 100, metadata={"m": 1})
    assert cache.get("k") == value
    assert cache.get_metadata("k") == {"m": 1}
    assert cache.increment("n", 2, ttl=60) == 2
    assert cache.keys() == ["k", "n"]
    assert cache.touch("k", 200) is True
    assert cache.get_metadata("k") == {"m": 1}
    if isinstance(cache.client, HerdClient):
        assert 195 <= cache.ttl("k") - cache.client._herd_timeout <= 200
    assert cache.rate_limit("rl", 1, 60).allowed is True
    assert cache.flush() == 3


def test_sharded_client(redis_factory: Factory) -> None:
    if not REAL_REDIS:
        pytest.skip("sharding needs distinct servers")
    base = redis.connection.parse_url(settings.REDIS_URL)
    host, port = base.get("host", "127.0.0.1"), base.get("port", 6379)
    cache = redis_factory(LOCATION=[f"redis://{host}:{port}/12", f"redis://{host}:{port}/13"],
                          OPTIONS={"CLIENT_CLASS": "django_redis.client.ShardClient"})
    assert isinstance(cache.client, ShardClient)
    data = {f"k{i}": i for i in range(20)}
    cache.set_many(data, 100, metadata={"m": 1})
    assert cache.get_many(list(data)) == data
    assert all(cache.get_metadata(key) == {"m": 1} for key in data)
    assert cache.keys() == sorted(data)
    assert cache.incr_version("k1") == 2
    assert cache.get_metadata("k1", version=2) == {"m": 1}
    cache.zadd("scores", {"a": 1})  # routed to the key's shard
    assert cache.zscore("scores", "a") == 1
    assert cache.flush() == 21


def test_increments_are_atomic_across_processes(redis_cache: RedisEdgeCache) -> None:
    if not REAL_REDIS:
        pytest.skip("processes need a real server")
    params = {"KEY_PREFIX": redis_cache.key_prefix, "OPTIONS": {}}
    procs = spawned.processes("tests.cache.test_redis:_hammer",
                              (redis_cache._server, params, 200), 4)
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
    assert [proc.exitcode for proc in procs] == [0] * 4
    assert redis_cache.get("hits") == 800
    assert 50 <= redis_cache.ttl("hits") <= 60


def _hammer(location: str, params: dict[str, Any], times: int) -> None:
    cache = RedisEdgeCache(location, params)
    for _ in range(times):
        cache.increment("hits", ttl=60)


# --- failures ---------------------------------------------------------------------------------

@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP port that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


def test_redis_down_fails_within_the_socket_timeout(silent_server: int) -> None:
    cache = make_redis_cache(LOCATION=f"redis://127.0.0.1:{silent_server}/0",
                             OPTIONS={"SOCKET_CONNECT_TIMEOUT": 0.2, "SOCKET_TIMEOUT": 0.2})
    if not REAL_REDIS:
        pytest.skip("fakeredis does not use sockets")
    for call in (lambda: cache.get("k"), lambda: cache.set("k", 1, metadata={"m": 1}),
                 lambda: cache.increment("k"), lambda: cache.rate_limit("k", 1, 1),
                 lambda: cache.keys()):
        started = time.monotonic()
        with pytest.raises(redis.RedisError):
            call()
        # redis-py retries a timed-out command 3 times with backoff: well under 5 s, no hang.
        assert time.monotonic() - started < 5


def test_ignore_exceptions_returns_defaults() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cache = make_redis_cache(LOCATION=f"redis://127.0.0.1:{port}/0",
                             OPTIONS={"IGNORE_EXCEPTIONS": True, "SOCKET_CONNECT_TIMEOUT": 0.2})
    if not REAL_REDIS:
        pytest.skip("fakeredis does not use sockets")
    assert cache.get("k", "dflt") == "dflt"
    assert cache.set("k", 1, metadata={"m": 1}) is None
    assert cache.get_metadata("k") is None
    assert cache.has("k") is False
    assert cache.increment("k") is None
    assert cache.keys() == []
    assert cache.list() == []
    assert cache.flush() == 0
    assert cache.get_many(["a"]) == {}
    assert cache.rate_limit("k", 5, 10) == (True, 0, 5, 10.0)  # fails open
