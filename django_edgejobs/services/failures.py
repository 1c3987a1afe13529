"""Failures grouped by what went wrong: the same exception class with the same message once
the numbers and ids in it are taken out (``failure_groups``, ``retry_all_failed(error_group=)``).

A group's fingerprint (``fingerprints.py``) is computed from a failed job's stored error
(``last_error`` and the exception path in its ``error_history``) and stored with it
(``Job.error_group``, written by every writer of ``last_error``), so the groups are SQL
aggregates over the failed jobs of the window, through a partial index of the failed jobs by
group: their cost is a few aggregates, not a Python loop over every failure (16 s for 200,000
failures before). A job without a stored fingerprint (failed before migration 0014, which
fills those it finds; written by a worker of the previous version during a rolling deploy;
released for an unknown type) is fingerprinted here from its stored error, as before.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db.models import Count, Max, Min, Q
from django.db.models.functions import Trunc

from ..fingerprints import describe_failure, fingerprint
from ..models import JobStatus
from .jobs import jobs_queryset


@dataclass(frozen=True)
class FailureGroup:
    """Failed jobs with the same exception class and the same message, numbers and ids aside."""

    fingerprint: str
    exception: str  #: the exception's class, as stored (``module.Class`` or ``Class``)
    message: str  #: the normalised message: ``<id>``, ``<hex>``, ``<n>`` for what varies
    count: int
    first_seen: datetime  #: the earliest ``completed_at`` (when it failed for good)
    last_seen: datetime
    types: list[str] = field(default_factory=list)  #: job types in the group, sorted
    example_job_id: Any = None  #: the most recent failed job of the group


def _window(since: datetime | None, type: str | None, queue: str | None, tags: Any = None,
            tag_mode: str = "all", status: str = JobStatus.FAILED) -> tuple[Any, str]:
    """The jobs whose last failure the filters take, and the column that dates it: failed
    jobs by when they failed for good; retrying ones (pending with an error) by their latest
    failure, which is when they were last changed."""
    if since is not None and not isinstance(since, datetime):
        raise ValueError(f"since must be a datetime or None, got {since!r}")
    qs = jobs_queryset(type=type, status=status, queue=queue, tags=tags, tag_mode=tag_mode)
    moment = "completed_at" if status == JobStatus.FAILED else "updated_at"
    if status != JobStatus.FAILED:
        qs = qs.exclude(last_error="")
    if since is not None:
        qs = qs.filter(**{f"{moment}__gte": since})
    return qs.order_by(), moment


def _unstored(qs: Any, moment: str) -> Iterator[tuple[Any, ...]]:
    """(id, type, fingerprint, moment, (exception, message)) of the jobs with no stored
    fingerprint (failed before migration 0014, or by a worker of the version before it during
    a rolling deploy; or released for an unknown type), computed here from their stored
    error."""
    rows = qs.filter(error_group__isnull=True)
    for job_id, type_name, last_error, history, at in rows.values_list(
            "id", "type", "last_error", "error_history", moment).iterator(chunk_size=2000):
        text = describe_failure(last_error, history)
        yield job_id, type_name, fingerprint(*text), at, text


@dataclass
class Timeline:
    """Counts of a group's failures in ``count`` buckets of ``size`` from ``start``."""

    start: datetime
    size: timedelta
    count: int

    def index(self, moment: datetime | None) -> int | None:
        if moment is None or moment < self.start:
            return None
        i = int((moment - self.start) / self.size)
        return i if i < self.count else self.count - 1

    def unit(self) -> str | None:
        """The largest of day, hour and minute whose boundaries every bucket edge is on (so
        counts truncated to it in SQL fall into whole buckets); None if none is."""
        for name, seconds in (("day", 86400), ("hour", 3600), ("minute", 60)):
            if (self.size.total_seconds() % seconds == 0
                    and self.start.timestamp() % seconds == 0):
                return name
        return None


def failure_groups(since: datetime | None = None, type: str | None = None,
                   queue: str | None = None) -> list[FailureGroup]:
    """The failed jobs (failed for good since ``since``, of ``type`` and ``queue`` when given),
    grouped by fingerprint; the largest group first (then the most recent)."""
    return grouped_failures(since, type, queue)[0]


def grouped_failures(since: datetime | None = None, type: str | None = None,
                     queue: str | None = None, *, timeline: Timeline | None = None,
                     status: str = JobStatus.FAILED,
                     ) -> tuple[list[FailureGroup], dict[str, list[int]]]:
    """``failure_groups``, and for each group its counts per bucket of ``timeline`` (the
    admin's sparklines). ``status`` pending: the jobs still retrying after a failure,
    grouped the same way (``first_seen``/``last_seen``: when they last failed).

    Grouped in SQL by the stored fingerprint (``Job.error_group``): a few aggregates over the
    window's failed jobs, whatever their number, and one read of each group's latest job for
    its text; jobs without one are grouped here, one by one."""
    qs, moment = _window(since, type, queue, status=status)
    stored = qs.filter(error_group__isnull=False)
    groups: dict[str, dict[str, Any]] = {}
    counts: dict[str, list[int]] = {}
    for key, n, first, last in (stored.values("error_group")
                                .annotate(n=Count("*"), first=Min(moment), last=Max(moment))
                                .values_list("error_group", "n", "first", "last")):
        groups[key] = {"count": n, "first": first, "last": last, "types": set(),
                       "example": None}
    if not groups and not qs.filter(error_group__isnull=True).exists():
        return [], counts
    for key, type_name in stored.values_list("error_group", "type").distinct():
        groups[key]["types"].add(type_name)
    unit = timeline.unit() if timeline is not None else None
    if timeline is not None and unit is not None:
        bucketed = (stored.annotate(at=Trunc(moment, unit, tzinfo=UTC))
                    .values("error_group", "at").annotate(n=Count("*"))
                    .values_list("error_group", "at", "n"))
        for key, at, n in bucketed:
            i = timeline.index(at)
            if i is not None:
                counts.setdefault(key, [0] * timeline.count)[i] += n
    elif timeline is not None:
        for key, at in stored.values_list("error_group", moment).iterator(chunk_size=5000):
            i = timeline.index(at)
            if i is not None:
                counts.setdefault(key, [0] * timeline.count)[i] += 1
    texts: dict[str, tuple[str, str]] = {}
    for job_id, type_name, key, at, text in _unstored(qs, moment):
        if timeline is not None:
            i = timeline.index(at)
            if i is not None:
                counts.setdefault(key, [0] * timeline.count)[i] += 1
        g = groups.get(key)
        if g is None:
            groups[key] = {"count": 1, "first": at, "last": at, "types": {type_name},
                           "example": job_id}
            texts[key] = text
            continue
        g["count"] += 1
        g["types"].add(type_name)
        if at is not None and (g["first"] is None or at < g["first"]):
            g["first"] = at
        if at is not None and (g["last"] is None or at >= g["last"]):
            g["last"], g["example"], texts[key] = at, job_id, text
    _latest(qs, moment, groups, texts)
    found = []
    for key, g in groups.items():
        exception, message = texts.get(key, ("error", ""))
        found.append(FailureGroup(fingerprint=key, exception=exception, message=message,
                                  count=g["count"], first_seen=g["first"],
                                  last_seen=g["last"], types=sorted(g["types"]),
                                  example_job_id=g["example"]))
    found.sort(key=lambda g: (-g.count, -(g.last_seen.timestamp() if g.last_seen else 0)))
    return found, counts


def _latest(qs: Any, moment: str, groups: dict[str, dict[str, Any]],
            texts: dict[str, tuple[str, str]]) -> None:
    """For each group whose latest job is a stored one: that job (``example``) and its text
    (exception class, normalised message) in ``texts``; read through the failed jobs' group
    index, the jobs at each group's ``last`` moment, 200 groups per read."""
    wanted = [(key, g["last"]) for key, g in groups.items() if g["example"] is None]
    for i in range(0, len(wanted), 200):
        condition = Q()
        for key, last in wanted[i:i + 200]:
            condition |= Q(error_group=key, **{moment: last})
        rows = qs.filter(condition).values_list("id", "error_group", "last_error",
                                                "error_history")
        for job_id, key, last_error, history in rows:
            if groups[key]["example"] is None:
                groups[key]["example"] = job_id
                texts[key] = describe_failure(last_error, history)


def is_fingerprint(value: Any) -> bool:
    return isinstance(value, str) and re.fullmatch(r"[0-9a-f]{12}", value) is not None


def failed_ids(type: str | None = None, queue: str | None = None, tags: Any = None,
               tag_mode: str = "all", error_group: str | None = None,
               limit: int | None = None, status: str = JobStatus.FAILED) -> list:
    """Ids of the failed jobs matching the filters, and the group ``error_group`` if given;
    at most ``limit`` (the most recent failures first when limited). ``status`` pending: the
    jobs of the group still retrying (pending, with a failure as their last error)."""
    if error_group is not None and not is_fingerprint(error_group):
        raise ValueError("error_group must be a group's fingerprint (12 hex characters, "
                         f"FailureGroup.fingerprint), got {error_group!r}")
    if error_group is None:
        qs = jobs_queryset(type=type, status=status, queue=queue, tags=tags,
                           tag_mode=tag_mode)
        if status != JobStatus.FAILED:
            qs = qs.exclude(last_error="")
        order = "-completed_at" if status == JobStatus.FAILED else "-updated_at"
        return list(qs.order_by(order).values_list("id", flat=True)[:limit])
    qs, moment = _window(None, type, queue, tags, tag_mode, status=status)
    found = [(at, job_id) for job_id, at in qs.filter(error_group=error_group)
             .order_by(f"-{moment}").values_list("id", moment)[:limit]]
    found += [(at, job_id) for job_id, _, key, at, _ in _unstored(qs, moment)
              if key == error_group]
    found.sort(key=lambda pair: pair[0].timestamp() if pair[0] else 0, reverse=True)
    return [job_id for _, job_id in found[:limit]]
