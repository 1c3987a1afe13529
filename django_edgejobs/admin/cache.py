"""The edge cache page: list keys of a cache by prefix, with metadata and TTL; delete some.

Works with any cache in ``CACHES`` whose backend has the edge cache's ``list(prefix=)`` (and
Django's ``delete_many``): RedisEdgeCache and DatabaseEdgeCache. Only users with the
permission ``django_edgejobs.manage_cache`` see it. It hangs on the CacheEntry model so the
app index links to it; it shows every edge cache, not only the database one.
"""

from __future__ import annotations

from typing import Any, cast
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.contrib.admin.models import DELETION, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.cache import caches
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from ..models import CacheEntry
from . import display

PERMISSION = "django_edgejobs.manage_cache"
MAX_KEYS = 500
MAX_DELETE = 1000


def edge_caches() -> list[str]:
    """Aliases of the configured caches that can list keys."""
    from django.conf import settings

    out = []
    for alias in settings.CACHES:
        try:
            cache = caches[alias]
        except Exception:
            continue
        if callable(getattr(cache, "list", None)) and callable(getattr(cache, "delete_many",
                                                                       None)):
            out.append(alias)
    return out


def _ttl(value) -> str:
    if value is None:
        return "never expires"
    try:
        return display.human_duration(float(value))
    except (TypeError, ValueError):
        return str(value)


@admin.register(CacheEntry)
class EdgeCacheAdmin(admin.ModelAdmin):
    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.is_active and request.user.is_staff and request.user.has_perm(
            PERMISSION)

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        return self.has_module_permission(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return self.has_module_permission(request)

    def get_urls(self):
        view = self.admin_site.admin_view(self.changelist_view)
        return [
            path("", view, name="django_edgejobs_cacheentry_changelist"),
            path("", view, name="django_edgejobs_cache"),
        ]

    def changelist_view(self, request: HttpRequest, extra_context=None):
        if not self.has_module_permission(request):
            raise PermissionDenied
        aliases = edge_caches()
        source = request.POST if request.method == "POST" else request.GET
        alias = source.get("cache") or (aliases[0] if aliases else "")
        prefix = source.get("prefix", "")
        if aliases and alias not in aliases:
            alias = aliases[0]
        if request.method == "POST":
            return self._delete(request, alias, prefix)
        if request.method not in ("GET", "HEAD"):
            return HttpResponseNotAllowed(["GET", "POST"])
        rows, total, error = [], 0, ""
        if alias:
            try:
                found = cast(Any, caches[alias]).list(prefix=prefix)  # an edge cache method
            except Exception as exc:
                found, error = [], f"{type(exc).__name__}: {exc}"
            found = sorted(found, key=lambda r: str(r.get("key")))
            total = len(found)
            rows = [{"key": str(r.get("key")), "ttl": _ttl(r.get("ttl")),
                     "metadata": display.short_json(display.redact(r.get("metadata")), 300)
                     if r.get("metadata") is not None else ""}
                    for r in found[:MAX_KEYS]]
        context = {
            **self.admin_site.each_context(request),
            "title": "Edge cache",
            "opts": self.opts,
            "app_label": self.opts.app_label,
            "aliases": aliases,
            "alias": alias,
            "prefix": prefix,
            "rows": rows,
            "total": total,
            "shown": len(rows),
            "error": error,
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/django_edgejobs/cacheentry/cache.html", context)

    def _delete(self, request: HttpRequest, alias: str, prefix: str) -> HttpResponseRedirect:
        if not self.has_delete_permission(request):
            raise PermissionDenied
        keys = [k for k in request.POST.getlist("keys") if k][:MAX_DELETE]
        if alias and keys:
            caches[alias].delete_many(keys)
            # A key may hold a NUL character, which PostgreSQL's text column refuses.
            shown = ", ".join(k.replace("\x00", "\\x00") for k in keys[:20]) + (
                f" and {len(keys) - 20} more" if len(keys) > 20 else "")
            LogEntry.objects.create(
                user_id=cast(int, request.user.pk),
                content_type_id=ContentType.objects.get_for_model(CacheEntry).pk,
                object_id=None, object_repr=f"cache {alias!r}: {len(keys)} key(s)"[:200],
                action_flag=DELETION, change_message=f"Deleted keys: {shown}")
            self.message_user(request, f"Deleted {len(keys)} key(s) from cache {alias!r}.",
                              messages.SUCCESS)
        else:
            self.message_user(request, "No key selected; nothing was deleted.", messages.WARNING)
        url = reverse("admin:django_edgejobs_cache")
        return HttpResponseRedirect(f"{url}?{urlencode({'cache': alias, 'prefix': prefix})}")
