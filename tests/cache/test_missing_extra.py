"""RedisEdgeCache without the [redis] extra: a clear error naming the extra, never a traceback
from ``manage.py check``.

The extra's absence is simulated: ``sys.modules[name] = None`` makes ``import name`` fail and
``importlib.util.find_spec(name)`` return None, as for a package that is not installed.
"""

from __future__ import annotations

import importlib
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

import django_edgejobs.cache as edge_cache_package
from django_edgejobs.cache.missing import MissingRedisEdgeCache

EXTRA = "django-edgejobs[redis]"
REDIS_CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "edge": {"BACKEND": "django_edgejobs.cache.RedisEdgeCache",
             "LOCATION": "redis://127.0.0.1:6379/0"},
}


@pytest.fixture(params=["django_redis", "redis"])
def without(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Make one package of the extra unimportable for the test (restored afterwards)."""
    name = request.param
    for loaded in [m for m in sys.modules if m.startswith(f"{name}.")]:
        monkeypatch.delitem(sys.modules, loaded)
    monkeypatch.setitem(sys.modules, name, None)
    # Forget what an earlier test imported, so the lookup runs again.
    for module in ("django_edgejobs.cache.redis", "django_edgejobs.cache.redis_client"):
        monkeypatch.delitem(sys.modules, module, raising=False)
    monkeypatch.delattr(edge_cache_package, "RedisEdgeCache", raising=False)
    return name


def test_the_backend_resolves_to_a_stand_in_that_names_the_extra(without: str) -> None:
    backend = edge_cache_package.RedisEdgeCache
    assert backend is MissingRedisEdgeCache
    cache = backend("redis://127.0.0.1:6379/0", {"KEY_PREFIX": "x"})  # creating it works
    for use in (lambda: cache.get("k"), lambda: cache.set("k", 1), lambda: cache.get_many(["k"]),
                lambda: cache.incr("k"), cache.clear):
        with pytest.raises(ImproperlyConfigured, match=r"\[redis\] extra") as info:
            use()
        assert EXTRA in str(info.value)
    with pytest.raises(AttributeError, match=r"\[redis\] extra"):
        cache.increment("k")  # an edge cache method
    assert getattr(cache, "list", None) is None  # getattr with a default still works
    cache.close()  # Django calls it after every request: a no-op


def test_importing_the_module_directly_names_the_extra(without: str) -> None:
    with pytest.raises(ImportError, match=r"needs the \[redis\] extra") as info:
        importlib.import_module("django_edgejobs.cache.redis")
    assert EXTRA in str(info.value)


def test_manage_py_check_reports_e009_instead_of_a_traceback(without: str) -> None:
    # Django's own cache checks create every cache; that used to raise
    # InvalidCacheBackendError before edgejobs.E009 could report anything.
    with override_settings(CACHES=REDIS_CACHES), pytest.raises(SystemCheckError) as info:
        call_command("check", tag=["caches"])
    text = str(info.value)
    assert "edgejobs.E009" in text
    assert "CACHES['edge']" in text
    assert EXTRA in text


def test_with_the_extra_installed_the_real_backend_is_used() -> None:
    from django_edgejobs.cache.redis import RedisEdgeCache

    assert edge_cache_package.RedisEdgeCache is RedisEdgeCache
    assert not issubclass(RedisEdgeCache, MissingRedisEdgeCache)
