"""Masking secrets in stored JSON (payloads, results, steps, event data): the admin, the
status URL and the ops tools show values through ``redact``. Pure functions."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from .conf import get_settings

MASK = "********"

_NOT_ALNUM = re.compile(r"[^a-z0-9]")


def _norm(key: str) -> str:
    return _NOT_ALNUM.sub("", key.lower())


def redact_keys() -> tuple[str, ...]:
    return tuple(k for k in (_norm(str(k)) for k in get_settings().REDACT_KEYS) if k)


def is_secret(key: Any, keys: Iterable[str]) -> bool:
    """True when ``key`` names a secret: one of ``keys`` appears in it, ignoring case and
    punctuation ("X-Api-Key" and "apiKey" match "api_key"; "access_token" matches "token")."""
    name = _norm(str(key))
    return any(k in name for k in keys)


def redact(value: Any, keys: Iterable[str] | None = None) -> Any:
    """A copy of a JSON value with the values of secret keys masked, at any depth."""
    keys = tuple(redact_keys() if keys is None else keys)
    if isinstance(value, dict):
        return {k: (MASK if is_secret(k, keys) else redact(v, keys)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v, keys) for v in value]
    return value


def shorten_strings(value: Any, limit: int) -> Any:
    """A copy of a JSON value with every string longer than ``limit`` cut, saying how much."""
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit]}… ({len(value) - limit:,} more characters)"
    if isinstance(value, dict):
        return {k: shorten_strings(v, limit) for k, v in value.items()}
    if isinstance(value, list):
        return [shorten_strings(v, limit) for v in value]
    return value
