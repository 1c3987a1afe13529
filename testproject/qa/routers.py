"""With ``LEDGER_DATABASE_URL`` set, the qa ledger (``Run``) is written through the alias
``ledger``: the fault suite points it at the test database directly while the worker's own
connections (``DATABASE_URL``) go through a proxy it cuts or blackholes, so the oracle
records what the handlers did whatever happens to the worker's connections."""

from __future__ import annotations

from typing import Any


class LedgerRouter:
    def db_for_read(self, model: Any, **hints: Any) -> str | None:
        return "ledger" if model._meta.app_label == "qa" else None

    db_for_write = db_for_read

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool | None:
        return None

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool | None:
        return False if db == "ledger" else None
