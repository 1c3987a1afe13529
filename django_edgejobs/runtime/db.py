"""Database connections of the runtime's threads."""

from __future__ import annotations

from collections.abc import Callable

from django.db import connections


def reset_connection(alias: str) -> None:
    """Drop a connection that may be broken; the next query opens a new one."""
    conn = connections[alias]
    try:
        if conn.in_atomic_block:
            return
        conn.close()
    except Exception:  # pragma: no cover - closing a broken connection
        conn.connection = None


def with_connections_closed(target: Callable[[], None]) -> Callable[[], None]:
    """``target`` for a thread of its own: close the thread's connections when it ends."""
    def run() -> None:
        try:
            target()
        finally:
            connections.close_all()

    return run
