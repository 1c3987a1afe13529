"""Jobs as JSON-ready data (the ``edgejobs`` command's ``--json`` and the MCP server's tools):
the documented keys, times in ISO 8601."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

#: The keys of a job in ``list --json`` (and the first keys of ``show --json``).
JOB_KEYS = ("id", "type", "queue", "status", "priority", "attempts", "max_attempts", "run_at",
            "expires_at", "created_at", "started_at", "completed_at", "tags",
            "idempotency_key", "progress", "last_error")
#: The further keys of ``show --json``.
DETAIL_KEYS = ("payload", "result", "timeout", "retry_delay", "retry_backoff",
               "retry_mode", "retry_multiplier", "retry_delay_max", "worker", "error_history",
               "events")


def when(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def job_dict(job: Any, *, detail: bool = False, events: Iterable[Any] = ()) -> dict[str, Any]:
    """A job as JSON-ready data with the documented keys."""
    out = {
        "id": str(job.id), "type": job.type, "queue": job.queue, "status": job.status,
        "priority": job.priority, "attempts": job.attempts, "max_attempts": job.max_attempts,
        "run_at": when(job.run_at), "expires_at": when(job.expires_at),
        "created_at": when(job.created_at), "started_at": when(job.started_at),
        "completed_at": when(job.completed_at), "tags": list(job.tags),
        "idempotency_key": job.idempotency_key, "progress": job.progress,
        "last_error": job.last_error,
    }
    if detail:
        out.update({
            "payload": job.payload, "result": job.result, "timeout": job.timeout,
            "retry_delay": job.retry_delay, "retry_backoff": job.retry_backoff,
            # The mode ("fixed", "linear", "exponential") and the multiplier in effect.
            "retry_mode": job.backoff_mode, "retry_multiplier": job.backoff_multiplier,
            "retry_delay_max": job.retry_delay_max, "worker": job.lease_owner or None,
            "error_history": list(job.error_history),
            "events": [{"type": e.type, "at": when(e.created_at), "data": e.data}
                       for e in events],
        })
    return out
