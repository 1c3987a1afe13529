"""Row 14 of issue 9: the edge caches under concurrency, a Redis outage and hostile input.

A private redis-server on its own port is started and stopped here, so the shared Redis of
the machine is never touched.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.acceptance.conftest import ROOT, database_url
from tests.acceptance.faults.conftest import scale, until

pytestmark = [pytest.mark.acceptance, pytest.mark.fault]

PORT = int(os.environ.get("EDGEJOBS_FAULT_REDIS_PORT", "6397"))


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


class PrivateRedis:
    def __init__(self, port: int):
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        server = shutil.which("redis-server")
        if server is None:
            pytest.skip("redis-server is not installed")
        self.proc = subprocess.Popen([server, "--port", str(self.port), "--bind", "127.0.0.1",
                                      "--save", "", "--appendonly", "no"],
                                     stdout=subprocess.DEVNULL)
        assert until(lambda: _listening(self.port), 10) is not None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture
def private_redis():
    redis = PrivateRedis(PORT)
    redis.start()
    yield redis
    redis.stop()


def edge_cache(prefix: str = "faults", timeout: float = 1.0):
    from django_edgejobs.cache import RedisEdgeCache

    return RedisEdgeCache(f"redis://127.0.0.1:{PORT}/0", {
        "KEY_PREFIX": prefix,
        "OPTIONS": {"SERIALIZER": "django_redis.serializers.json.JSONSerializer",
                    "SOCKET_CONNECT_TIMEOUT": timeout, "SOCKET_TIMEOUT": timeout},
    })


INCREMENTS = """
import os
from django.core.cache import caches
alias, n = os.environ["FAULT_CACHE"], int(os.environ["FAULT_COUNT"])
cache = caches[alias]
for _ in range(n):
    cache.increment("hits")
"""


def _run_incrementers(alias: str, processes: int, each: int, redis_url: str) -> None:
    env = {**os.environ, "DATABASE_URL": database_url(), "REDIS_URL": redis_url,
           "FAULT_CACHE": alias, "FAULT_COUNT": str(each)}
    procs = [subprocess.Popen([sys.executable, str(ROOT / "testproject" / "manage.py"),
                               "shell", "-c", INCREMENTS],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
             for _ in range(processes)]
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err.decode()[-2000:]


@pytest.mark.django_db(transaction=True)
def test_14a_concurrent_increments_are_exact(private_redis, record):
    from django.core.cache import caches

    processes, each = scale((4, 2_000), (10, 10_000))
    url = f"redis://127.0.0.1:{PORT}/0"
    started = time.monotonic()
    _run_incrementers("edge", processes, each, url)
    redis_seconds = time.monotonic() - started
    assert edge_cache("testproject").get("hits") == processes * each

    db_processes, db_each = scale((4, 500), (10, 10_000))
    started = time.monotonic()
    _run_incrementers("edge_db", db_processes, db_each, url)
    db_seconds = time.monotonic() - started
    assert caches["edge_db"].get("hits") == db_processes * db_each
    record("14a. concurrent increments", redis_total=processes * each,
           redis_seconds=round(redis_seconds, 1), database_total=db_processes * db_each,
           database_seconds=round(db_seconds, 1), lost=0)


def test_14b_redis_down_fails_fast_and_recovers(private_redis, record):
    cache = edge_cache(timeout=1.0)
    cache.set("k", 1)
    private_redis.stop()
    started = time.monotonic()
    with pytest.raises(Exception) as failure:
        cache.get("k")
    failed_in = time.monotonic() - started
    assert failed_in < 1.0 + 1.0, failed_in  # within the socket timeout (and some slack)
    assert "Connection" in type(failure.value).__name__ or "connect" in str(failure.value)
    quiet = edge_cache(timeout=1.0)
    quiet._ignore_exceptions = True  # as IGNORE_EXCEPTIONS would
    private_redis.start()
    back = time.monotonic()

    def works() -> bool:
        try:
            cache.set("k", 2)
            return cache.get("k") == 2
        except Exception:
            return False

    recovered = until(works, 10, step=0.05)
    assert recovered is not None and recovered <= 1.0, recovered
    record("14b. Redis stopped and restarted", failed_within_seconds=round(failed_in, 2),
           recovered_seconds=round(recovered, 2))
    del back, quiet


def test_14c_nasty_keys_namespaces_and_a_planted_pickle(private_redis, record, tmp_path):
    import warnings

    a, b = edge_cache("tenant-a"), edge_cache("tenant-b")
    nasty = ["with space", "new\nline", "emoji \U0001f600", "x" * 10_000, "*?[]", "a*", "a",
             "tab\tkey", "quote'\"", ""]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # CacheKeyWarning for the odd ones, as Django does
        for n, key in enumerate(nasty):
            a.set(key, n)
            b.set(key, -n)
        assert [a.get(k) for k in nasty] == list(range(len(nasty)))
        assert [b.get(k) for k in nasty] == [-n for n in range(len(nasty))]
        assert sorted(a.keys(prefix="a*")) == ["a*"]  # the prefix is literal
        a.flush()
        assert [a.get(k) for k in nasty] == [None] * len(nasty)
        assert [b.get(k) for k in nasty] == [-n for n in range(len(nasty))]

    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (Path.touch, (marker,))

    raw = b.client.get_client(write=True)
    raw.set(b.make_key("planted"), pickle.dumps(Exploit()))
    with contextlib.suppress(Exception):  # not JSON: refused, never unpickled
        b.get("planted")
    assert not marker.exists()
    record("14c. nasty keys, two namespaces, planted pickle", keys=len(nasty), collisions=0,
           flush_crossed_namespaces=0, pickle_executed=0)
