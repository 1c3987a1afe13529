"""django-edgejobs: durable background jobs and an edge cache for Django.

The public API is re-exported here lazily, so importing the package never imports models
(it is safe from settings-time code).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .exceptions import (
    EdgeJobsError,
    InvalidPayload,
    JobNotFound,
    PermanentError,
    Retry,
    UnknownJobType,
)

__version__ = "0.1.0.dev0"

_LAZY = {
    "job": "handlers",
    "JobHandler": "handlers",
    "JobContext": "runtime.context",
    "enqueue": "services.enqueue",
    "aenqueue": "services.enqueue",
    "enqueue_many": "services.enqueue",
    "enqueue_on_commit": "services.enqueue",
    "enqueue_batch": "services.workflows",
    "get_batch": "services.workflows",
    "BatchStatus": "services.workflows",
    "sig": "canvas",
    "chain": "canvas",
    "group": "canvas",
    "chord": "canvas",
    "get_job": "services.jobs",
    "list_jobs": "services.jobs",
    "get_jobs_by_tags": "services.jobs",
    "get_job_events": "services.jobs",
    "cancel_job": "services.lifecycle",
    "cancel_all_upcoming": "services.lifecycle",
    "retry_job": "services.lifecycle",
    "edit_job": "services.lifecycle",
    "edit_all_pending": "services.lifecycle",
    "retry_all_failed": "services.lifecycle",
    "failure_groups": "services.failures",
    "status_url": "services.status",
    "pause_queue": "services.queues",
    "resume_queue": "services.queues",
    "list_queues": "services.queues",
    "QueueInfo": "services.queues",
    "RateLimit": "services.limits",
    "FailureGroup": "services.failures",
    "complete_token": "services.tokens",
    "get_token": "services.tokens",
    "expire_timed_out_tokens": "services.tokens",
    "TokenResult": "services.tokens",
    "add_cron": "services.schedules",
    "pause_cron": "services.schedules",
    "resume_cron": "services.schedules",
    "edit_cron": "services.schedules",
    "remove_cron": "services.schedules",
    "list_crons": "services.schedules",
    "trigger_cron": "services.schedules",
    "reclaim_stuck_jobs": "runtime.supervisor",
    "cleanup_old_jobs": "runtime.supervisor",
    "cleanup_old_job_events": "runtime.supervisor",
}

__all__ = [  # explicit, so type checkers see every export (the lazy ones too)
    "BatchStatus",
    "EdgeJobsError",
    "FailureGroup",
    "InvalidPayload",
    "JobContext",
    "JobHandler",
    "JobNotFound",
    "PermanentError",
    "QueueInfo",
    "RateLimit",
    "Retry",
    "TokenResult",
    "UnknownJobType",
    "add_cron",
    "aenqueue",
    "cancel_all_upcoming",
    "cancel_job",
    "chain",
    "chord",
    "cleanup_old_job_events",
    "cleanup_old_jobs",
    "complete_token",
    "edit_all_pending",
    "edit_cron",
    "edit_job",
    "enqueue",
    "enqueue_batch",
    "enqueue_many",
    "enqueue_on_commit",
    "expire_timed_out_tokens",
    "failure_groups",
    "get_batch",
    "get_job",
    "get_job_events",
    "get_jobs_by_tags",
    "get_token",
    "group",
    "job",
    "list_crons",
    "list_jobs",
    "list_queues",
    "pause_cron",
    "pause_queue",
    "reclaim_stuck_jobs",
    "remove_cron",
    "resume_cron",
    "resume_queue",
    "retry_all_failed",
    "retry_job",
    "sig",
    "status_url",
    "trigger_cron",
]

if TYPE_CHECKING:  # pragma: no cover
    from .canvas import chain, chord, group, sig
    from .handlers import JobHandler, job
    from .runtime.context import JobContext
    from .runtime.supervisor import cleanup_old_job_events, cleanup_old_jobs, reclaim_stuck_jobs
    from .services.enqueue import aenqueue, enqueue, enqueue_many, enqueue_on_commit
    from .services.failures import FailureGroup, failure_groups
    from .services.jobs import get_job, get_job_events, get_jobs_by_tags, list_jobs
    from .services.lifecycle import (
        cancel_all_upcoming,
        cancel_job,
        edit_all_pending,
        edit_job,
        retry_all_failed,
        retry_job,
    )
    from .services.limits import RateLimit
    from .services.queues import QueueInfo, list_queues, pause_queue, resume_queue
    from .services.schedules import (
        add_cron,
        edit_cron,
        list_crons,
        pause_cron,
        remove_cron,
        resume_cron,
        trigger_cron,
    )
    from .services.status import status_url
    from .services.tokens import TokenResult, complete_token, expire_timed_out_tokens, get_token
    from .services.workflows import BatchStatus, enqueue_batch, get_batch


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'django_edgejobs' has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
