from __future__ import annotations

from django.db import models


class CacheEntry(models.Model):
    """One key of a DatabaseEdgeCache.

    ``location`` is the cache's LOCATION (a separate keyspace, like a Redis database number);
    ``key`` is the full made key (KEY_PREFIX and version included, ``%`` and NUL escaped) and
    ``key_hash`` its SHA-256, the unique handle, so keys of any length are stored without
    collisions. Integers that fit 64 bits live in ``int_value`` so SQL can increment them
    atomically; every other value is pickled into ``value``. ``expires_at_ms`` is a Unix time in
    milliseconds (NULL: never), and ``metadata`` a JSON document that lives and dies with the
    row. Written by :mod:`django_edgejobs.cache.db_store` only.
    """

    id = models.BigAutoField(primary_key=True)
    location = models.CharField(max_length=255, default="", blank=True)
    key_hash = models.CharField(max_length=64)
    key = models.TextField()
    value = models.BinaryField(null=True)
    int_value = models.BigIntegerField(null=True)
    # NULL (no metadata) differs from any JSON text, "{}" included.
    metadata = models.TextField(null=True)  # noqa: DJ001
    expires_at_ms = models.BigIntegerField(null=True)

    class Meta:
        verbose_name = "cache entry"
        verbose_name_plural = "cache entries"
        # The admin's edge cache page (list keys by prefix, delete some) needs this.
        permissions = [("manage_cache", "Can list and delete edge cache keys")]
        constraints = [
            models.UniqueConstraint(fields=["location", "key_hash"],
                                    name="edgejobs_cache_location_key"),
        ]
        indexes = [
            models.Index(fields=["location", "expires_at_ms"], name="edgejobs_cache_expiry"),
        ]

    def __str__(self) -> str:
        return self.key
