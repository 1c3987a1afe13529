"""The edge cache page: keys by prefix with metadata and TTL; deleting some; the permission."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import DELETION, LogEntry
from django.core.cache import caches
from django.urls import reverse

pytestmark = pytest.mark.django_db

URL = "admin:django_edgejobs_cache"
FAKE = "tests.admin.fake_cache.ListingLocMemCache"


@pytest.fixture(autouse=True)
def edge_caches(settings):  # type: ignore[no-untyped-def]
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                    "LOCATION": "plain"},
        "edge": {"BACKEND": FAKE, "LOCATION": "edge-1"},
        "other": {"BACKEND": FAKE, "LOCATION": "edge-2"},
    }
    edge = caches["edge"]
    edge.clear()
    caches["other"].clear()
    edge.set("user:1", "a", ttl=300, metadata={"owner": "ann", "api_key": "sekret"})
    edge.set("user:2", "b", timeout=None)
    edge.set("session:9", "c", ttl=60)
    caches["other"].set("user:3", "z")
    return edge


def test_lists_keys_under_a_prefix_with_metadata_and_ttl(admin_client):
    response = admin_client.get(reverse(URL), {"cache": "edge", "prefix": "user:"})
    html = response.content.decode()
    assert [r["key"] for r in response.context["rows"]] == ["user:1", "user:2"]
    assert "session:9" not in html
    assert "ann" in html and "sekret" not in html  # metadata, redacted
    assert response.context["rows"][0]["ttl"] in ("4 min 59 s", "5 min 0 s")
    assert response.context["rows"][1]["ttl"] == "never expires"
    assert response.context["aliases"] == ["edge", "other"]  # LocMemCache cannot list


def test_deletes_the_selected_keys_and_logs_it(admin_client, edge_caches):
    response = admin_client.post(reverse(URL), {"cache": "edge", "prefix": "user:",
                                                "keys": ["user:1", "session:9"]})
    assert response.status_code == 302 and "prefix=user%3A" in response.url
    assert edge_caches.get("user:1") is None and edge_caches.get("session:9") is None
    assert edge_caches.get("user:2") == "b"
    assert caches["other"].get("user:3") == "z"
    entry = LogEntry.objects.get()
    assert entry.action_flag == DELETION and "user:1" in entry.change_message


def test_only_users_with_the_permission_see_or_use_it(staff, admin_client, edge_caches):
    other = staff("view_job")
    assert other.get(reverse(URL)).status_code == 403
    assert other.post(reverse(URL), {"cache": "edge", "keys": ["user:1"]}).status_code == 403
    assert edge_caches.get("user:1") == "a"
    index = other.get(reverse("admin:app_list", args=["django_edgejobs"])).content.decode()
    assert reverse(URL) not in index
    manager = staff("manage_cache")
    assert manager.get(reverse(URL)).status_code == 200
    assert reverse(URL) in admin_client.get(reverse("admin:index")).content.decode()


def test_without_an_edge_cache_the_page_says_so(admin_client, settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    html = admin_client.get(reverse(URL)).content.decode()
    assert "can list its keys" in html


def test_keys_and_metadata_are_escaped(admin_client, edge_caches):
    edge_caches.set("x:<script>alert(1)</script>", 1, metadata={"n": "<img src=x onerror=y>"})
    html = admin_client.get(reverse(URL), {"cache": "edge", "prefix": "x:"}).content.decode()
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)" in html
    assert "<img src=x" not in html
