"""RedisEdgeCache against plain django-redis, on the same Redis, in one run.

    .venv/bin/python benchmarks/cache_bench.py [--rounds 7] [--ops 2000]

Reports ratios (edge / raw, median over interleaved rounds), not absolute times, and the
number of network round trips (socket writes) of each call. Not a test: nothing asserts on time.
``REDIS_URL`` picks the server (default redis://127.0.0.1:6379/0); keys live under two fresh
KEY_PREFIXes that are flushed at the end.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import django
from django.conf import settings

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
settings.configure(USE_TZ=True, CACHES={})
django.setup()

import redis  # noqa: E402
from django_redis.cache import RedisCache  # noqa: E402

from django_edgejobs.cache import RedisEdgeCache  # noqa: E402

TARGETS = {"get": 1.15, "set": 1.15, "set with metadata": 1.5}


def timed(fn: Callable[[int], Any], ops: int) -> float:
    started = time.perf_counter()
    for i in range(ops):
        fn(i)
    return (time.perf_counter() - started) / ops


def round_trips(fn: Callable[[], Any]) -> int:
    sends = 0
    original = redis.connection.AbstractConnection.send_packed_command

    def counting(self: Any, command: Any, check_health: bool = True) -> None:
        nonlocal sends
        sends += 1
        original(self, command, check_health)

    redis.connection.AbstractConnection.send_packed_command = counting  # type: ignore[method-assign]
    try:
        fn()
    finally:
        redis.connection.AbstractConnection.send_packed_command = original  # type: ignore[method-assign]
    return sends


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--ops", type=int, default=2000)
    args = parser.parse_args()

    tag = uuid.uuid4().hex[:8]
    raw = RedisCache(REDIS_URL, {"KEY_PREFIX": f"bench-raw-{tag}"})
    edge = RedisEdgeCache(REDIS_URL, {"KEY_PREFIX": f"bench-edge-{tag}"})
    batch = {f"many:{i}": {"n": i, "s": "x" * 50} for i in range(100)}
    value = {"user": 42, "name": "x" * 100}
    for cache in (raw, edge):
        cache.set("hit", value, None)
        cache.set("counter", 0, None)
        cache.set_many(batch, None)

    cases: dict[str, tuple[Callable[[int], Any], Callable[[int], Any]]] = {
        "get": (lambda i: raw.get("hit"), lambda i: edge.get("hit")),
        "set": (lambda i: raw.set(f"s{i % 100}", value, 300),
                lambda i: edge.set(f"s{i % 100}", value, 300)),
        "set with metadata": (lambda i: raw.set(f"s{i % 100}", value, 300),
                              lambda i: edge.set(f"s{i % 100}", value, 300,
                                                 metadata={"owner": i})),
        "increment (raw: incr)": (lambda i: raw.incr("counter"),
                                  lambda i: edge.increment("counter")),
        "increment with ttl (raw: incr)": (lambda i: raw.incr("counter"),
                                           lambda i: edge.increment("counter", ttl=60)),
        "get_many(100)": (lambda i: raw.get_many(list(batch)),
                          lambda i: edge.get_many(list(batch))),
        "set_many(100)": (lambda i: raw.set_many(batch, 300),
                          lambda i: edge.set_many(batch, 300)),
    }
    slow = {"get_many(100)", "set_many(100)"}
    for raw_fn, edge_fn in cases.values():  # warm up connections and scripts
        raw_fn(0)
        edge_fn(0)

    print(f"Redis {redis.Redis.from_url(REDIS_URL).info()['redis_version']} at {REDIS_URL}; "
          f"{args.rounds} interleaved rounds of {args.ops} calls (÷10 for the 100-key calls)\n")
    print("| operation | edge / raw (median) | spread of rounds | round trips raw / edge "
          "| target |")
    print("| --- | --- | --- | --- | --- |")
    try:
        for name, (raw_fn, edge_fn) in cases.items():
            ops = args.ops // 10 if name in slow else args.ops
            ratios = []
            for _ in range(args.rounds):
                raw_t = timed(raw_fn, ops)
                edge_t = timed(edge_fn, ops)
                ratios.append(edge_t / raw_t)
            trips = f"{round_trips(lambda f=raw_fn: f(0))} / {round_trips(lambda f=edge_fn: f(0))}"
            target = TARGETS.get(name)
            print(f"| {name} | {statistics.median(ratios):.2f}x | "
                  f"{min(ratios):.2f}-{max(ratios):.2f} | {trips} | "
                  f"{f'<= {target}x' if target else ('1 round trip' if name in slow else '-')} |")
    finally:
        edge.flush()
        raw.delete_pattern("*")


if __name__ == "__main__":
    main()
