"""The edge-cache contract (DESIGN.md, "Cache"): one mixin, run against every backend.

A subclass provides a ``cache`` fixture, ``other_cache`` (a second namespace on the same store)
and ``advance(cache, seconds)`` (let time pass: a sleep on Redis, a clock shift on the
database).
"""

from __future__ import annotations

import warnings
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.core.cache import CacheKeyWarning

from django_edgejobs.cache import RateLimit

SHORT = 0.2  # seconds: a TTL that advance(SHORT + 0.1) outlives


class EdgeCacheContract:
    def advance(self, cache: Any, seconds: float) -> None:
        raise NotImplementedError

    # --- Django semantics kept ---------------------------------------------------------------

    def test_set_get_delete(self, cache: Any) -> None:
        assert cache.get("missing") is None
        assert cache.get("missing", "dflt") == "dflt"
        cache.set("k", {"a": [1, 2]})
        assert cache.get("k") == {"a": [1, 2]}
        assert cache.delete("k") is True
        assert cache.delete("k") is False
        assert cache.get("k") is None

    def test_get_many_returns_only_found_keys(self, cache: Any) -> None:
        assert cache.set_many({"a": 1, "b": "two"}) == []
        assert cache.get_many(["a", "b", "c"]) == {"a": 1, "b": "two"}
        assert cache.get_many([]) == {}

    def test_delete_many(self, cache: Any) -> None:
        cache.set_many({"a": 1, "b": 2, "c": 3})
        assert cache.delete_many([]) is None
        assert cache.delete_many(["a", "b", "zz"]) == 2
        assert cache.get_many(["a", "b", "c"]) == {"c": 3}

    def test_incr_keeps_django_meaning(self, cache: Any) -> None:
        with pytest.raises(ValueError):
            cache.incr("nope")
        with pytest.raises(ValueError):
            cache.decr("nope")
        cache.set("n", 10)
        assert cache.incr("n", 5) == 15
        assert cache.decr("n", 20) == -5
        assert cache.get("n") == -5

    def test_add(self, cache: Any) -> None:
        assert cache.add("k", 1, metadata={"who": "first"}) is True
        assert cache.add("k", 2, metadata={"who": "second"}) is False
        assert cache.get("k") == 1
        assert cache.get_metadata("k") == {"who": "first"}

    def test_zero_and_negative_timeouts_do_not_store(self, cache: Any) -> None:
        cache.set("k", 1, timeout=0, metadata={"m": 1})
        assert cache.get("k") is None
        assert cache.get_metadata("k") is None
        assert cache.add("k2", 1, -1) is True
        assert cache.has_key("k2") is False
        cache.set("k3", 1, 30)
        assert cache.touch("k3", 0) is True
        assert cache.get("k3") is None

    def test_has_and_has_key(self, cache: Any) -> None:
        cache.set("k", None)
        assert cache.has("k") is True
        assert cache.has_key("k") is True
        assert "k" in cache
        assert cache.has("nope") is False

    def test_versions_are_separate(self, cache: Any) -> None:
        cache.set("k", "v1", metadata={"v": 1})
        cache.set("k", "v2", version=2, metadata={"v": 2})
        assert cache.get("k") == "v1"
        assert cache.get_metadata("k", version=2) == {"v": 2}
        assert cache.keys() == ["k"]
        assert cache.keys(version=2) == ["k"]

    def test_incr_version_moves_metadata_and_expiry(self, cache: Any) -> None:
        cache.set("k", "v", 100, metadata={"m": 1})
        assert cache.incr_version("k") == 2
        assert cache.get("k") is None
        assert cache.get("k", version=2) == "v"
        assert cache.get_metadata("k", version=2) == {"m": 1}
        assert 95 <= cache.ttl("k", version=2) <= 100
        with pytest.raises(ValueError):
            cache.incr_version("missing")

    # --- ttl alias and expiry ----------------------------------------------------------------

    def test_ttl_is_an_alias_of_timeout(self, cache: Any) -> None:
        cache.set("k", 1, ttl=100)
        assert 95 <= cache.ttl("k") <= 100
        cache.set("forever", 1, ttl=None)
        assert cache.ttl("forever") is None
        assert cache.ttl("missing") == 0
        with pytest.raises(TypeError):
            cache.set("k", 1, 10, ttl=10)

    def test_expire_ttl_persist(self, cache: Any) -> None:
        cache.set("k", "v", None, metadata={"m": 1})
        assert cache.expire("k", SHORT) is True
        assert cache.expire("missing", 10) is False
        self.advance(cache, SHORT + 0.1)
        assert cache.get("k") is None
        assert cache.get_metadata("k") is None
        cache.set("k", "v")  # a new key: the old metadata must not come back
        assert cache.get_metadata("k") is None

    def test_persist_keeps_value_and_metadata(self, cache: Any) -> None:
        cache.set("k", "v", SHORT, metadata={"m": 1})
        assert cache.persist("k") is True
        assert cache.persist("missing") is False
        self.advance(cache, SHORT + 0.1)
        assert cache.get("k") == "v"
        assert cache.get_metadata("k") == {"m": 1}
        assert cache.ttl("k") is None

    def test_touch_moves_metadata_expiry(self, cache: Any) -> None:
        cache.set("k", "v", 100, metadata={"m": 1})
        assert cache.touch("k", SHORT) is True
        self.advance(cache, SHORT + 0.1)
        assert cache.get("k") is None
        cache.set("k", "v")
        assert cache.get_metadata("k") is None

    def test_expire_accepts_ttl_keyword(self, cache: Any) -> None:
        cache.set("k", "v", None)
        assert cache.expire("k", ttl=50) is True
        assert 45 <= cache.ttl("k") <= 50
        assert cache.expire("k", ttl=None) is True
        assert cache.ttl("k") is None

    # --- metadata ----------------------------------------------------------------------------

    def test_metadata_is_kept_replaced_and_dropped(self, cache: Any) -> None:
        cache.set("k", 1, metadata={"owner": "ann", "tags": ["x"]})
        assert cache.get_metadata("k") == {"owner": "ann", "tags": ["x"]}
        cache.set("k", 2)  # metadata=None keeps it
        assert cache.get_metadata("k") == {"owner": "ann", "tags": ["x"]}
        cache.set("k", 3, metadata={})  # a dict replaces it
        assert cache.get_metadata("k") == {}
        assert cache.get_metadata("missing") is None
        cache.delete("k")
        cache.set("k", 4)
        assert cache.get_metadata("k") is None

    def test_metadata_expires_with_the_value(self, cache: Any) -> None:
        cache.set("k", 1, SHORT, metadata={"m": 1})
        cache.set("other", 1, 100)
        self.advance(cache, SHORT + 0.1)
        assert cache.get_metadata("k") is None
        cache.set("k", 1)
        assert cache.get_metadata("k") is None

    def test_set_without_metadata_moves_metadata_to_new_ttl(self, cache: Any) -> None:
        cache.set("k", 1, SHORT, metadata={"m": 1})
        cache.set("k", 2, 100)
        self.advance(cache, SHORT + 0.1)
        assert cache.get("k") == 2
        assert cache.get_metadata("k") == {"m": 1}

    def test_bad_metadata_is_refused(self, cache: Any) -> None:
        with pytest.raises(TypeError):
            cache.set("k", 1, metadata=["not", "a", "dict"])
        with pytest.raises(TypeError):
            cache.set("k", 1, metadata={"when": object()})
        assert cache.get("k") is None

    def test_set_many_with_metadata(self, cache: Any) -> None:
        assert cache.set_many({"a": 1, "b": 2}, 100, metadata={"batch": 7}) == []
        assert cache.get_metadata("a") == {"batch": 7}
        assert cache.get_metadata("b") == {"batch": 7}
        assert cache.set_many({"a": 3}, ttl=100) == []
        assert cache.get_metadata("a") == {"batch": 7}

    def test_deletes_remove_metadata(self, cache: Any) -> None:
        for name in ("a", "b", "c", "p1", "p2"):
            cache.set(name, 1, metadata={"n": name})
        cache.delete("a")
        cache.delete_many(["b", "c"])
        assert cache.delete_pattern("p*") == 2
        for name in ("a", "b", "c", "p1", "p2"):
            cache.set(name, 1)
            assert cache.get_metadata(name) is None

    # --- counters ----------------------------------------------------------------------------

    def test_increment_creates_and_adds(self, cache: Any) -> None:
        assert cache.increment("c") == 1
        assert cache.increment("c", 5) == 6
        assert cache.decrement("c", 2) == 4
        assert cache.get("c") == 4
        assert cache.decrement("d") == -1
        assert cache.ttl("c") is None  # no ttl given: no expiry

    def test_increment_ttl_applies_only_on_creation(self, cache: Any) -> None:
        assert cache.increment("c", ttl=100) == 1
        assert cache.increment("c", ttl=5) == 2
        assert 95 <= cache.ttl("c") <= 100
        cache.set("plain", 1, None)
        cache.increment("plain", ttl=5)
        assert cache.ttl("plain") is None

    def test_increment_after_expiry_starts_over(self, cache: Any) -> None:
        cache.increment("c", 10, ttl=SHORT)
        cache.set("c", 10, SHORT, metadata={"m": 1})
        self.advance(cache, SHORT + 0.1)
        assert cache.increment("c", 3, ttl=100) == 3
        assert cache.get_metadata("c") is None
        assert cache.ttl("c") > 50

    def test_increment_keeps_metadata(self, cache: Any) -> None:
        cache.set("c", 1, 100, metadata={"m": 1})
        assert cache.increment("c") == 2
        assert cache.get_metadata("c") == {"m": 1}

    def test_increment_bad_input(self, cache: Any) -> None:
        cache.set("s", "text")
        with pytest.raises(TypeError):
            cache.increment("s")
        assert cache.get("s") == "text"
        cache.set("big", 2**63 - 1)
        with pytest.raises(OverflowError):
            cache.increment("big")
        assert cache.get("big") == 2**63 - 1
        with pytest.raises(TypeError):
            cache.increment("c", 1.5)
        with pytest.raises(ValueError):
            cache.increment("c", ttl=0)

    def test_rate_limit(self, cache: Any) -> None:
        results = [cache.rate_limit("login:1.2.3.4", 3, 60) for _ in range(4)]
        assert [r.allowed for r in results] == [True, True, True, False]
        assert [r.count for r in results] == [1, 2, 3, 4]
        assert [r.remaining for r in results] == [2, 1, 0, 0]
        assert all(isinstance(r, RateLimit) and 55 <= r.reset_after <= 60 for r in results)

    def test_rate_limit_window_resets(self, cache: Any) -> None:
        assert cache.rate_limit("rl", 1, SHORT).allowed is True
        assert cache.rate_limit("rl", 1, SHORT).allowed is False
        self.advance(cache, SHORT + 0.1)
        assert cache.rate_limit("rl", 1, SHORT) == (True, 1, 0, pytest.approx(SHORT, abs=0.05))

    def test_rate_limit_heals_a_counter_without_expiry(self, cache: Any) -> None:
        cache.set("rl", 5, None)
        result = cache.rate_limit("rl", 10, 30)
        assert result.count == 6
        assert 25 <= cache.ttl("rl") <= 30

    @pytest.mark.parametrize(("limit", "window"), [
        (0, 10), (-1, 10), (1, 0), (1, -5), (1.5, 10), (True, 10), (None, 10), (1, None)])
    def test_rate_limit_bad_arguments(self, cache: Any, limit: Any, window: Any) -> None:
        with pytest.raises(ValueError):
            cache.rate_limit("rl", limit, window)
        assert cache.get("rl") is None

    # --- listings and namespace --------------------------------------------------------------

    def test_keys_never_show_metadata(self, cache: Any) -> None:
        cache.set("user:1", 1, metadata={"m": 1})
        cache.set("user:2", 2, metadata={"m": 2})
        cache.set("post:1", 3)
        assert cache.keys() == ["post:1", "user:1", "user:2"]
        assert cache.keys("user:*") == ["user:1", "user:2"]
        assert cache.keys(pattern="*:1") == ["post:1", "user:1"]
        assert cache.keys(prefix="user:") == ["user:1", "user:2"]
        assert cache.keys("?", prefix="user:") == ["user:1", "user:2"]

    def test_keys_prefix_is_literal(self, cache: Any) -> None:
        for key in ("a*b:1", "a*b:2", "axb:1", "a[b]:1", "ab:1", "a?b:1", "a\\b:1"):
            cache.set(key, 1)
        assert cache.keys(prefix="a*b:") == ["a*b:1", "a*b:2"]
        assert cache.keys(prefix="a[b]") == ["a[b]:1"]
        assert cache.keys(prefix="a?b") == ["a?b:1"]
        assert cache.keys(prefix="a\\b") == ["a\\b:1"]
        assert cache.keys("a[*]b:*") == ["a*b:1", "a*b:2"]

    def test_list(self, cache: Any) -> None:
        cache.set("s:1", 1, 100, metadata={"user": 1})
        cache.set("s:2", 2, None)
        cache.set("t:1", 3)
        entries = cache.list("s:")
        assert [e["key"] for e in entries] == ["s:1", "s:2"]
        assert entries[0]["metadata"] == {"user": 1}
        assert 95 <= entries[0]["ttl"] <= 100
        assert entries[1] == {"key": "s:2", "metadata": None, "ttl": None}
        assert len(cache.list()) == 3

    def test_expired_keys_are_not_listed(self, cache: Any) -> None:
        cache.set("gone", 1, SHORT)
        cache.set("kept", 1, 100)
        self.advance(cache, SHORT + 0.1)
        assert cache.keys() == ["kept"]
        assert [e["key"] for e in cache.list()] == ["kept"]

    def test_flush_only_this_namespace(self, cache: Any, other_cache: Any) -> None:
        cache.set("a", 1, metadata={"m": 1})
        cache.set("b", 1, version=3)
        other_cache.set("a", 2, metadata={"m": 2})
        assert cache.flush() == 2
        assert cache.get("a") is None
        assert cache.get("b", version=3) is None
        assert other_cache.get("a") == 2
        assert other_cache.get_metadata("a") == {"m": 2}
        cache.set("a", 1)
        assert cache.get_metadata("a") is None

    # --- bad keys ----------------------------------------------------------------------------

    @pytest.mark.parametrize("key", ["with space", "ctl\x01char", "nul\x00byte", "x" * 251])
    def test_bad_keys_warn_and_are_stored_exactly(self, cache: Any, key: str) -> None:
        near = key[:-1] + ("_" if key[-1] != "_" else "-")
        with pytest.warns(CacheKeyWarning):
            cache.set(key, "exact", metadata={"k": key})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CacheKeyWarning)
            cache.set(near, "near")
            assert cache.get(key) == "exact"
            assert cache.get(near) == "near"
            assert cache.get_metadata(key) == {"k": key}
            assert key in cache.keys()  # noqa: SIM118 - keys() is the method under test
            assert cache.increment(key + "#n") == 1

    # --- async twins -------------------------------------------------------------------------

    def test_async_twins(self, cache: Any) -> None:
        async def scenario() -> list[Any]:
            await cache.aset("k", 1, ttl=100, metadata={"m": 1})
            return [
                await cache.aget("k"),
                await cache.aget_metadata("k"),
                await cache.ahas("k"),
                await cache.aincrement("n", 2, ttl=100),
                await cache.adecrement("n"),
                await cache.akeys(),
                [e["key"] for e in await cache.alist()],
                await cache.aexpire("k", 50),
                await cache.attl("k") <= 50,
                await cache.apersist("k"),
                (await cache.arate_limit("r", 5, 10)).remaining,
                await cache.aset_many({"x": 1}, metadata={"b": 1}),
                await cache.aflush(),
            ]

        # async_to_sync: the sync parts run in this thread, on the test's DB connection.
        assert async_to_sync(scenario)() == [
            1, {"m": 1}, True, 2, 1, ["k", "n"], ["k", "n"], True, True, True, 4, [], 4]
