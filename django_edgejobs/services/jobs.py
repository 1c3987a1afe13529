"""Reading jobs: look-ups, listings and tag queries."""

from __future__ import annotations

import uuid
from typing import Any

from django.db.models import BooleanField, ExpressionWrapper
from django.db.models.expressions import RawSQL

from ..models import Job, JobEvent, JobStatus
from ..store import get_store
from . import validation as v

TAG_MODES = ("exact", "all", "any", "none")


def parse_job_id(job_id: Any) -> uuid.UUID | None:
    """A job id as UUID, or None when it cannot be one (so look-ups find nothing)."""
    if isinstance(job_id, uuid.UUID):
        return job_id
    if isinstance(job_id, str):
        try:
            return uuid.UUID(job_id)
        except ValueError:
            return None
    return None


def get_job(job_id: Any):
    """The Job with this id (a UUID or its string), or None."""
    parsed = parse_job_id(job_id)
    if parsed is None:
        return None
    return Job.objects.filter(id=parsed).first()


def check_tag_mode(mode: Any) -> None:
    if mode not in TAG_MODES:
        raise ValueError(f"tag mode must be one of {', '.join(TAG_MODES)}, got {mode!r}")


def filter_tags(qs, tags: Any, mode: str = "all"):
    """Narrow a Job queryset to jobs whose tags match ``tags`` under ``mode``."""
    check_tag_mode(mode)
    tags = v.validate_tags(tags, where="tags")
    sql, params = get_store().tag_condition(tags, mode)
    return qs.filter(ExpressionWrapper(RawSQL(sql, params), output_field=BooleanField()))


def jobs_queryset(type: str | None = None, status: str | None = None,
                  queue: str | None = None, tags: Any = None, tag_mode: str = "all"):
    check_tag_mode(tag_mode)
    qs = Job.objects.all()
    if type is not None:
        qs = qs.filter(type=type)
    if status is not None:
        statuses = [status] if isinstance(status, str) else list(status)
        bad = [s for s in statuses if s not in JobStatus.values]
        if bad:
            raise ValueError(f"unknown status {bad[0]!r}; one of {', '.join(JobStatus.values)}")
        qs = qs.filter(status__in=statuses)
    if queue is not None:
        qs = qs.filter(queue=queue)
    if tags is not None:
        qs = filter_tags(qs, tags, tag_mode)
    return qs


def list_jobs(type: str | None = None, status: str | None = None,
              queue: str | None = None, tags: Any = None, tag_mode: str = "all",
              limit: int | None = 50) -> list:
    """Jobs matching every given filter, newest first."""
    qs = jobs_queryset(type, status, queue, tags, tag_mode).order_by("-created_at", "-id")
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise ValueError(f"limit must be a non-negative integer or None, got {limit!r}")
        qs = qs[:limit]
    return list(qs)


def get_jobs_by_tags(tags: Any, mode: str = "all", limit: int | None = None) -> list:
    """Jobs whose tags match: ``exact`` (same set), ``all``, ``any`` or ``none`` of ``tags``."""
    # None is no tags (as everywhere else), not "no tag filter": the mode still applies.
    return list_jobs(tags=[] if tags is None else tags, tag_mode=mode, limit=limit)


def get_job_events(job_id: Any) -> list:
    """The job's events, oldest first."""
    parsed = parse_job_id(job_id)
    if parsed is None:
        return []
    return list(JobEvent.objects.filter(job_id=parsed).order_by("id"))
