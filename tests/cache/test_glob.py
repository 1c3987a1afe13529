"""DatabaseEdgeCache matches keys with Redis's glob rules: checked against Redis itself."""

from __future__ import annotations

import uuid

import pytest

from django_edgejobs.cache.base import glob_escape, glob_literal_prefix, glob_match

from .conftest import make_redis_cache

KEYS = ["a", "ab", "abc", "a*c", "a?c", "a[b]c", "a\\c", "b", "xyz", "a-c", "a]c", "a^c", "é-ü",
        "a\nc", ""]
PATTERNS = ["*", "a*", "a?c", "a[bc]c", "a[^b]c", "a[a-c]*", "a[c-a]*", "a\\*c", "a\\?c", "*c",
            "a[\\]]c", "a[*]c", "?", "??", "a[!b]c", "\\a*", "a[-]c", "*[é-ü]*", "a?c*"]


@pytest.mark.parametrize("pattern", PATTERNS)
def test_glob_match_agrees_with_redis(pattern: str) -> None:
    cache = make_redis_cache()
    conn = cache.client.get_client(write=True)
    tag = f"globtest-{uuid.uuid4().hex[:8]}:"
    try:
        conn.mset({tag + key: 1 for key in KEYS})
        by_redis = {k.decode()[len(tag):] for k in conn.scan_iter(match=tag + pattern, count=1000)}
        assert {key for key in KEYS if glob_match(pattern, key)} == by_redis
    finally:
        conn.delete(*[tag + key for key in KEYS])


@pytest.mark.parametrize("text", KEYS)
def test_escape_matches_only_itself(text: str) -> None:
    assert [key for key in KEYS if glob_match(glob_escape(text), key)] == [text]
    assert glob_literal_prefix(glob_escape(text) + "*") == text
