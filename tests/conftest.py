"""Shared fixtures. The suite runs on SQLite by default and on PostgreSQL when DATABASE_URL
points at one (``.ci/run`` does both)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import connection

from django_edgejobs.handlers import JobHandler
from django_edgejobs.registry import JobType, get_registry


def pytest_configure(config: pytest.Config) -> None:
    # The plugin is installed as the pytest11 entry point "edgejobs"; where the package is
    # not (re)installed from this checkout, load it from the source tree.
    manager = config.pluginmanager
    if not (manager.has_plugin("edgejobs")
            or manager.has_plugin("django_edgejobs.pytest_plugin")):
        manager.import_plugin("django_edgejobs.pytest_plugin")


def pytest_report_header(config: pytest.Config) -> str:
    from django.conf import settings

    db = settings.DATABASES["default"]
    return f"django-edgejobs database: {db['ENGINE'].rsplit('.', 1)[-1]} {db['NAME']}"


@pytest.fixture
def register() -> Iterator[Callable[..., JobHandler]]:
    """Register handlers for one test: ``register("t.x", fn, max_attempts=2)``.

    Every registration made during the test (with this or ``@job``) is undone after it.
    """
    registry = get_registry()
    saved = dict(registry._types)

    def add(name: str, fn: Callable[..., Any] | None = None, **options: Any) -> JobHandler:
        job_type = JobType(name=name, func=fn or (lambda payload, ctx: None), **options)
        registry._types[name] = job_type
        return JobHandler(job_type)

    yield add
    registry._types = saved


@pytest.fixture
def vendor() -> str:
    return connection.vendor


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02,
             message: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


@pytest.fixture
def thread_hops(monkeypatch: pytest.MonkeyPatch) -> Callable[[Any], list[str]]:
    """``thread_hops(module)``: the names of the functions ``module`` hands to Django's sync
    thread with its ``sync_to_async``, from now on (a list that fills as calls happen)."""
    def watch(module: Any) -> list[str]:
        seen: list[str] = []
        real = module.sync_to_async

        def counting(func: Any, **kwargs: Any) -> Any:
            seen.append(func.__name__)
            return real(func, **kwargs)

        monkeypatch.setattr(module, "sync_to_async", counting)
        return seen
    return watch
