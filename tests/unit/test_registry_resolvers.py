"""Registry resolvers: handlers for job types that no ``@job`` registered (django.tasks)."""

from __future__ import annotations

import pytest

from django_edgejobs.exceptions import UnknownJobType
from django_edgejobs.registry import JobType, Registry


def make() -> tuple[Registry, list[str]]:
    asked: list[str] = []

    def resolve(name: str) -> JobType | None:
        asked.append(name)
        if name == "x:known":
            return JobType(name=name, func=lambda payload, ctx: "resolved")
        if name == "x:broken":
            raise UnknownJobType("x:broken cannot be imported")
        return None

    registry = Registry()
    registry.add_resolver("x:", resolve)
    return registry, asked


def test_a_resolver_supplies_types_with_its_prefix():
    registry, asked = make()
    assert registry.get("x:known").func(None, None) == "resolved"
    assert registry.require("x:known").name == "x:known"
    assert "x:known" in registry
    assert registry.get("y:known") is None and asked == ["x:known"] * 3
    assert registry.names() == []  # resolved types are not registered


def test_registered_types_win_over_resolvers():
    registry, asked = make()
    registry.register(JobType(name="x:known", func=lambda payload, ctx: "registered"))
    assert registry.get("x:known").func(None, None) == "registered"
    assert asked == []


def test_require_says_why_a_resolver_cannot_while_get_returns_none():
    registry, _ = make()
    assert registry.get("x:broken") is None and "x:broken" not in registry
    with pytest.raises(UnknownJobType, match="cannot be imported"):
        registry.require("x:broken")
    with pytest.raises(UnknownJobType, match="no handler is registered for job type 'x:none'"):
        registry.require("x:none")
    assert 42 not in registry
