"""A stand-in edge cache for the admin's cache page: LocMemCache plus the two methods of the
edge cache contract the page uses (DESIGN.md, Cache): ``list(prefix="")`` returning
``[{"key", "metadata", "ttl"}]`` and Django's ``delete_many``. The real RedisEdgeCache and
DatabaseEdgeCache are written elsewhere; the page only relies on this contract."""

from __future__ import annotations

import time
from typing import Any

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.locmem import LocMemCache

_METADATA: dict[str, dict[str, Any]] = {}


class ListingLocMemCache(LocMemCache):
    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None, *, metadata=None,  # type: ignore[no-untyped-def, override]
            ttl=None):
        super().set(key, value, timeout if ttl is None else ttl, version)
        if metadata is not None:
            _METADATA[self.make_key(key, version)] = metadata

    def list(self, prefix: str = "") -> list[dict[str, Any]]:
        out = []
        with self._lock:
            for made, expiry in list(self._expire_info.items()):
                key = made.split(":", 2)[2]  # KEY_PREFIX:version:key
                if not key.startswith(prefix) or (expiry is not None and expiry <= time.time()):
                    continue
                out.append({"key": key, "metadata": _METADATA.get(made),
                            "ttl": None if expiry is None else round(expiry - time.time())})
        return out
