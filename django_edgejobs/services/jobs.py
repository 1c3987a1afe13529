"""Reading jobs: look-ups, listings and tag queries."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db.models import BooleanField, ExpressionWrapper, Q
from django.db.models.expressions import RawSQL
from django.utils import timezone

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


def _moment(name: str, value: Any) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise ValueError(f"{name} must be a datetime or None, got {value!r}")
    if settings.USE_TZ and timezone.is_naive(value):
        raise ValueError(f"{name} must be an aware datetime (USE_TZ is on), got {value!r}")
    return value


def _page_start(before: Any) -> tuple[datetime, uuid.UUID]:
    """(created_at, id) of the job ``before`` names: a Job, or the id of one that exists."""
    if isinstance(before, Job):
        return before.created_at, before.id
    parsed = parse_job_id(before)
    row = (Job.objects.filter(id=parsed).values_list("created_at", "id").first()
           if parsed is not None else None)
    if row is None:
        raise ValueError(f"before must be a Job or the id of one, got {before!r} (no such job)")
    return row


def list_jobs(type: str | None = None, status: str | None = None,
              queue: str | None = None, tags: Any = None, tag_mode: str = "all",
              limit: int | None = 50, *, priority: int | None = None,
              run_at_from: datetime | None = None, run_at_to: datetime | None = None,
              created_from: datetime | None = None, created_to: datetime | None = None,
              before: Any = None) -> list:
    """Jobs matching every given filter, newest first (``created_at``, then ``id``).

    ``run_at_from``/``created_from`` are inclusive, ``run_at_to``/``created_to`` exclusive.
    ``before``: a job (or its id) from an earlier page; only jobs after it in this order come
    back, so ``list_jobs(limit=50, before=page[-1])`` is the next page, and pages neither
    repeat nor skip a job while new ones arrive (keyset paging, no OFFSET)."""
    if priority is not None and (isinstance(priority, bool) or not isinstance(priority, int)):
        raise ValueError(f"priority must be an integer or None, got {priority!r}")
    bounds = {"run_at__gte": _moment("run_at_from", run_at_from),
              "run_at__lt": _moment("run_at_to", run_at_to),
              "created_at__gte": _moment("created_from", created_from),
              "created_at__lt": _moment("created_to", created_to)}
    qs = jobs_queryset(type, status, queue, tags, tag_mode).order_by("-created_at", "-id")
    if priority is not None:
        qs = qs.filter(priority=priority)
    qs = qs.filter(**{k: value for k, value in bounds.items() if value is not None})
    if before is not None:
        created_at, job_id = _page_start(before)
        qs = qs.filter(Q(created_at__lt=created_at) | Q(created_at=created_at, id__lt=job_id))
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
