"""The resumer: puts jobs whose time wait is over back to ``pending``."""

from __future__ import annotations

from ...store import get_store
from ..service import SupervisorService


def resume_due_waits() -> int:
    """Resume the waiting jobs whose ``wait_for``/``sleep`` moment has come; returns how
    many (a wait on a token is resumed by its token, or by the token expirer)."""
    return get_store().resume_due()


def settle_stranded() -> int:
    """Settle the dependents of jobs that finished a while ago with dependency edges still
    unresolved: the settle after their outcome never ran (the worker died between the
    commit and it, or the database refused it); and make due the jobs left waiting with no
    dependency at all (one was deleted). Returns how many jobs it settled or made due."""
    store = get_store()
    ids = store.stranded()
    if ids:
        store.settle(ids)
    return len(ids) + len(store.release_orphans())


class Resumer(SupervisorService):
    """Every ``SUPERVISOR_INTERVAL``: ``resume_due_waits()`` and ``settle_stranded()``."""

    name = "resumer"

    def run_once(self) -> int:
        return resume_due_waits() + settle_stranded()
