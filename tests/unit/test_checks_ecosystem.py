"""System checks about the database and caches the app runs on (W002, E009), and the rule that
every check id is documented."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pytest
from django.core.checks import Error, Tags, Warning, run_checks
from django.core.checks.registry import registry
from django.test import override_settings

from django_edgejobs import checks
from django_edgejobs.checks import (
    check_edge_caches,
    check_sqlite_transaction_mode,
    edge_cache_problems,
    sqlite_problems,
)

ROOT = Path(__file__).resolve().parents[2]
SQLITE = "django.db.backends.sqlite3"
REDIS_EDGE = "django_edgejobs.cache.RedisEdgeCache"


def sqlite(**options: Any) -> dict[str, Any]:
    db: dict[str, Any] = {"ENGINE": SQLITE, "NAME": "db.sqlite3"}
    if options:
        db["OPTIONS"] = options
    return db


# -- W002: SQLite without transaction_mode IMMEDIATE -------------------------------------------


def test_sqlite_without_a_transaction_mode_is_a_warning_with_the_snippet() -> None:
    problems = sqlite_problems({"default": sqlite()}, "default")
    assert [(type(p), p.id, p.msg, p.hint) for p in problems] == [(
        Warning, "edgejobs.W002",
        "DATABASES['default'] is SQLite without \"transaction_mode\": \"IMMEDIATE\": a worker's "
        "transaction that reads and then writes can fail with 'database is locked' when "
        "another process writes at the same time",
        'Set DATABASES["default"]["OPTIONS"] = {"transaction_mode": "IMMEDIATE"}',
    )]


def test_the_snippet_keeps_the_other_options_and_replaces_a_weaker_mode() -> None:
    db = sqlite(timeout=20, transaction_mode="DEFERRED", init_command="PRAGMA foo=1;")
    [problem] = sqlite_problems({"jobs": db}, "jobs")
    assert problem.hint == (
        'Set DATABASES["jobs"]["OPTIONS"] = {"timeout": 20, "transaction_mode": "IMMEDIATE", '
        '"init_command": "PRAGMA foo=1;"}')


@pytest.mark.parametrize("mode", ["IMMEDIATE", "immediate", "EXCLUSIVE"])
def test_a_mode_that_locks_at_begin_is_fine(mode: str) -> None:
    assert sqlite_problems({"default": sqlite(transaction_mode=mode)}, "default") == []


def test_only_the_database_holding_the_jobs_matters() -> None:
    databases = {"default": sqlite(transaction_mode="IMMEDIATE"), "legacy": sqlite()}
    assert sqlite_problems(databases, "default") == []
    assert [p.id for p in sqlite_problems(databases, "legacy")] == ["edgejobs.W002"]


@pytest.mark.parametrize("engine", ["django.db.backends.postgresql", "no.such.backend"])
def test_other_engines_are_not_concerned(engine: str) -> None:
    assert sqlite_problems({"default": {"ENGINE": engine, "NAME": "x"}}, "default") == []


def test_the_registered_check_reads_databases_and_runs_with_django_checks() -> None:
    with override_settings(DATABASES={"default": sqlite(timeout=5)}):
        assert [p.id for p in check_sqlite_transaction_mode()] == ["edgejobs.W002"]
        found = [m.id for m in run_checks(tags=[Tags.compatibility])]
        assert "edgejobs.W002" in found
    # The test project configures SQLite as recommended (and PostgreSQL needs nothing).
    assert check_sqlite_transaction_mode() == []


# -- E009: an edge cache backend without its requirements ---------------------------------------


@pytest.fixture
def without(monkeypatch: pytest.MonkeyPatch) -> Any:
    """``without("django_redis")``: that module cannot be found, as if it were not installed."""

    def hide(*modules: str) -> None:
        for module in modules:
            monkeypatch.setitem(sys.modules, module, None)

    return hide


def test_redis_edge_cache_without_django_redis_is_an_error(without: Any) -> None:
    without("django_redis")
    problems = edge_cache_problems({"default": {"BACKEND": REDIS_EDGE, "LOCATION": "redis://"}})
    assert [(type(p), p.id, p.msg, p.hint) for p in problems] == [(
        Error, "edgejobs.E009",
        "CACHES['default'] uses django_edgejobs.cache.RedisEdgeCache, which needs "
        "django-redis; not installed",
        "pip install 'django-edgejobs[redis]', or use django_edgejobs.cache.DatabaseEdgeCache, "
        "which needs no Redis.",
    )]


def test_every_missing_requirement_is_named(without: Any) -> None:
    without("django_redis", "redis")
    [problem] = edge_cache_problems({"edge": {"BACKEND": REDIS_EDGE}})
    assert problem.msg.startswith("CACHES['edge'] uses django_edgejobs.cache.RedisEdgeCache, "
                                  "which needs django-redis and redis; not installed")


def test_installed_requirements_and_other_backends_are_fine(without: Any) -> None:
    assert edge_cache_problems({"default": {"BACKEND": REDIS_EDGE}}) == []  # installed here
    without("django_redis", "redis")
    assert edge_cache_problems({
        "db": {"BACKEND": "django_edgejobs.cache.DatabaseEdgeCache"},
        "plain": {"BACKEND": "django_redis.cache.RedisCache"},
        "local": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    }) == []


def test_the_registered_cache_check_reads_caches(without: Any) -> None:
    without("django_redis")
    with override_settings(CACHES={"default": {"BACKEND": REDIS_EDGE}}):
        assert [p.id for p in check_edge_caches()] == ["edgejobs.E009"]
    assert check_edge_caches in registry.registered_checks
    assert Tags.caches in check_edge_caches.tags  # type: ignore[attr-defined]


# -- E003 (USE_TZ) still there, and every id documented ----------------------------------------


@override_settings(USE_TZ=False)
def test_use_tz_false_is_reported_by_django_checks() -> None:
    found = [(m.id, type(m)) for m in run_checks(tags=[Tags.compatibility])]
    assert ("edgejobs.E003", Error) in found


def test_every_check_id_is_documented() -> None:
    source = Path(checks.__file__).read_text()
    ids = set(re.findall(r"edgejobs\.[EW]\d{3}", source))
    assert {"edgejobs.E003", "edgejobs.W002", "edgejobs.E009"} <= ids
    documented = set(re.findall(r"edgejobs\.[EW]\d{3}",
                                (ROOT / "docs" / "reference" / "checks.md").read_text()))
    assert ids - documented == set()
