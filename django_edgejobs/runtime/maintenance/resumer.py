"""The resumer: puts jobs whose time wait is over back to ``pending``."""

from __future__ import annotations

from ...store import get_store
from ..service import SupervisorService


def resume_due_waits() -> int:
    """Resume the waiting jobs whose ``wait_for``/``sleep`` moment has come; returns how
    many (a wait on a token is resumed by its token, or by the token expirer)."""
    return get_store().resume_due()


class Resumer(SupervisorService):
    """Every ``SUPERVISOR_INTERVAL``: ``resume_due_waits()``."""

    name = "resumer"

    def run_once(self) -> int:
        return resume_due_waits()
