"""The fault suite: real runworker processes, real signals, the qa ledger as the oracle.

Scale: ``EDGEJOBS_FAULTS=fast`` (default; the subset ``make test`` and CI run) or ``full``
(``make chaos``). Each scenario records a row (lost, duplicated, stuck, recovery seconds) in
the JSON file named by ``EDGEJOBS_FAULTS_REPORT`` (if set); ``report.py`` turns the rows into
``docs/reliability.md``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.db.models import Count

FULL = os.environ.get("EDGEJOBS_FAULTS", "fast") == "full"


def scale(fast: Any, full: Any) -> Any:
    return full if FULL else fast


def fast_settings(**extra: Any) -> dict[str, Any]:
    return {"POLL_INTERVAL": 0.2, "HEARTBEAT_INTERVAL": 0.5, "WORKER_TIMEOUT": 3,
            "SUPERVISOR_INTERVAL": 0.5, **extra}


postgres_only = pytest.mark.skipif("connection.vendor != 'postgresql'",
                                   reason="needs PostgreSQL")


class Ledger:
    """Reads the qa.Run ledger (one row per attempt phase) and the job table."""

    def done_counts(self) -> dict[Any, int]:
        from qa.models import Run

        return dict(Run.objects.filter(phase="done").values_list("job_id")
                    .annotate(n=Count("id")).values_list("job_id", "n"))

    def verdict(self, job_ids: list[Any]) -> dict[str, int]:
        """lost: never completed; duplicated: ran to the end more than once; stuck: neither
        finished nor pending (processing/waiting) at the end."""
        from django_edgejobs.models import Job

        done = self.done_counts()
        statuses = dict(Job.objects.filter(id__in=job_ids).values_list("id", "status"))
        return {
            "jobs": len(job_ids),
            "lost": sum(1 for j in job_ids if statuses.get(j) != "completed"),
            "duplicated": sum(1 for j in job_ids if done.get(j, 0) > 1),
            "stuck": sum(1 for j in job_ids
                         if statuses.get(j) in ("processing", "waiting")),
        }


@pytest.fixture
def ledger() -> Ledger:
    return Ledger()


@pytest.fixture
def record(request: pytest.FixtureRequest) -> Iterator[Callable[..., None]]:
    """Record this scenario's figures for docs/reliability.md."""
    rows: list[dict[str, Any]] = []

    def add(scenario: str, **figures: Any) -> None:
        rows.append({"scenario": scenario, "database": connection.vendor,
                     "scale": "full" if FULL else "fast", **figures})

    yield add
    path = os.environ.get("EDGEJOBS_FAULTS_REPORT")
    if path and rows:
        with Path(path).open("a") as fh:
            for row in rows:
                fh.write(json.dumps(row) + "\n")


def until(predicate: Callable[[], Any], timeout: float, step: float = 0.1) -> float | None:
    """Seconds until ``predicate`` held, or None if it did not within ``timeout``."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(step)
    return None
