"""Django's generic cache tests (``BaseCacheTests`` from Django's tests/cache/tests.py, the
suite every built-in backend passes) on the edge cache backends.

Each class is configured the way Django configures its own backend of the same kind: the
database one like ``DBCacheTests`` (whose two query-count tests it also runs), the Redis one like
``RedisCacheTests`` (no culling, so the two cull caches are left out as Django leaves them out).
"""

import os
import unittest

from cache import tests as django_cache_tests  # not its classes: the loader would run them
from django.test import TestCase, TransactionTestCase, override_settings

BaseCacheTests = django_cache_tests.BaseCacheTests  # a mixin, not a TestCase: safe here
caches_setting_for_tests = django_cache_tests.caches_setting_for_tests


# EDGE_EXT_BASELINE=1: the Redis class on plain django-redis, to compare.
BASELINE = os.environ.get("EDGE_EXT_BASELINE") == "1"


@unittest.skipIf(BASELINE, "baseline run: plain django-redis only")
@override_settings(CACHES=caches_setting_for_tests(
    BACKEND="django_edgejobs.cache.DatabaseEdgeCache", LOCATION="test cache table"))
class EdgeDatabaseCacheTests(BaseCacheTests, TransactionTestCase):
    available_apps = ["cache", "django_edgejobs"]

    test_get_many_num_queries = django_cache_tests.DBCacheTests.test_get_many_num_queries
    test_delete_many_num_queries = django_cache_tests.DBCacheTests.test_delete_many_num_queries
    # Counted before the write, as Django's DatabaseCache counts (DBCacheTests expects 18 too).
    test_zero_cull = django_cache_tests.DBCacheTests.test_zero_cull


@override_settings(CACHES=caches_setting_for_tests(
    base={"BACKEND": "django_redis.cache.RedisCache" if BASELINE
          else "django_edgejobs.cache.RedisEdgeCache",
          "LOCATION": os.environ.get("EDGE_EXT_REDIS_URL", "redis://127.0.0.1:6399/0")},
    exclude={"cull", "zero_cull"}))
class EdgeRedisCacheTests(BaseCacheTests, TestCase):
    pass
