"""Django features that sit on a cache, run on both backends: cache sessions (plain and with
metadata, as docs/howto/cache-sessions.md builds them) and django-ratelimit."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.contrib.sessions.backends.cache import SessionStore
from django.core.cache import caches
from django.test import RequestFactory, override_settings

from .conftest import redis_params


@pytest.fixture(params=["redis", "db"])
def alias(request: pytest.FixtureRequest, db: None) -> Iterator[str]:
    if request.param == "db":
        params: dict[str, Any] = {"BACKEND": "django_edgejobs.cache.DatabaseEdgeCache",
                                  "KEY_PREFIX": "edgetest-sessions"}
    else:
        params = {"BACKEND": "django_edgejobs.cache.RedisEdgeCache",
                  "LOCATION": settings.REDIS_URL,
                  **redis_params()}
    setting = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
               "edge": params}
    with override_settings(CACHES=setting, SESSION_CACHE_ALIAS="edge",
                           RATELIMIT_USE_CACHE="edge"):
        yield "edge"
        caches["edge"].flush()


class MetadataSessionStore(SessionStore):
    """The how-to's session store: the user id rides along as metadata."""

    def save(self, must_create: bool = False) -> None:
        super().save(must_create)
        user_id = self._session.get("_auth_user_id")
        if user_id is not None:
            self._cache.set(self.cache_key, self._get_session(no_load=must_create),
                            self.get_expiry_age(), metadata={"user_id": user_id})


def test_cache_sessions_work(alias: str) -> None:
    session = SessionStore()
    session["cart"] = [1, 2]
    session.save()
    again = SessionStore(session.session_key)
    assert again["cart"] == [1, 2]
    again.flush()
    assert not SessionStore().exists(session.session_key)


def test_sessions_with_metadata_can_be_listed_per_user(alias: str) -> None:
    cache = caches[alias]
    for user in ("7", "7", "8"):
        session = MetadataSessionStore()
        session["_auth_user_id"] = user
        session.save()
    mine = [entry for entry in cache.list(prefix=SessionStore.cache_key_prefix)
            if (entry["metadata"] or {}).get("user_id") == "7"]
    assert len(mine) == 2
    assert all(entry["ttl"] > 0 for entry in mine)
    for entry in mine:  # log user 7 out everywhere
        cache.delete(entry["key"])
    assert len(cache.keys(prefix=SessionStore.cache_key_prefix)) == 1


def test_django_ratelimit(alias: str) -> None:
    ratelimit = pytest.importorskip("django_ratelimit.core")
    request = RequestFactory().post("/login", REMOTE_ADDR="10.1.2.3")
    limited = [ratelimit.is_ratelimited(request, group="login", key="ip", rate="3/m",
                                        increment=True) for _ in range(5)]
    assert limited == [False, False, False, True, True]
