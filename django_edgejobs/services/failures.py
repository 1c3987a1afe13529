"""Failures grouped by what went wrong: the same exception class with the same message once
the numbers and ids in it are taken out (``failure_groups``, ``retry_all_failed(error_group=)``).

A group's fingerprint is computed from a failed job's stored error (``last_error`` and the
exception path in its ``error_history``), so it needs no column of its own and works for jobs
that failed before this module existed. It is computed here, over the failed jobs that match
the filters (read in chunks, only four columns): fine for tens of thousands of failures; a
rollup for millions is the scale issue's.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ..models import JobStatus
from .jobs import jobs_queryset

#: How much of a normalised message makes a group (longer messages share a group when their
#: first this many characters agree).
MESSAGE_CHARS = 200

_UUID = re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                   r"[0-9a-fA-F]{12}\b")
_HEX = re.compile(r"\b(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{8,}\b")
_NUMBER = re.compile(r"(?<![A-Za-z_])[-+]?\d+(?:[.,:]\d+)*")


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


def normalise(message: str) -> str:
    """A message with the parts that differ between occurrences replaced: UUIDs by ``<id>``,
    long hex strings by ``<hex>``, numbers by ``<n>``; cut to ``MESSAGE_CHARS``."""
    text = _UUID.sub("<id>", message.strip().splitlines()[0] if message.strip() else "")
    text = _HEX.sub("<hex>", text)
    return _NUMBER.sub("<n>", text)[:MESSAGE_CHARS]


def describe_failure(last_error: str, error_history: Any) -> tuple[str, str]:
    """(exception class, normalised message) of a stored failure."""
    last = error_history[-1] if isinstance(error_history, list) and error_history else {}
    exception = last.get("exception") if isinstance(last, dict) else None
    name, sep, message = (last_error or "").partition(": ")
    if not sep:  # "TimeoutError" alone, or a message without a class
        name, message = (name, "") if name.isidentifier() else ("", name)
    return str(exception or name or "error"), normalise(message)


def fingerprint(exception: str, message: str) -> str:
    """12 hex characters naming the group of (``exception``, normalised ``message``)."""
    return hashlib.sha256(f"{exception}\n{message}".encode("utf-8", "backslashreplace")
                          ).hexdigest()[:12]


def _failed(since: datetime | None, type: str | None, queue: str | None,
            tags: Any = None, tag_mode: str = "all", newest_first: bool = False,
            status: str = JobStatus.FAILED) -> Iterator[tuple[Any, ...]]:
    if since is not None and not isinstance(since, datetime):
        raise ValueError(f"since must be a datetime or None, got {since!r}")
    qs = jobs_queryset(type=type, status=status, queue=queue, tags=tags, tag_mode=tag_mode)
    # Failed jobs by when they failed for good; retrying ones (pending with an error) by
    # their latest failure, which is when they were last changed.
    moment = "completed_at" if status == JobStatus.FAILED else "updated_at"
    if status != JobStatus.FAILED:
        qs = qs.exclude(last_error="")
    if since is not None:
        qs = qs.filter(**{f"{moment}__gte": since})
    if newest_first:
        qs = qs.order_by(f"-{moment}")
    yield from qs.values_list("id", "type", "last_error", "error_history",
                              moment).iterator(chunk_size=2000)


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
    admin's sparklines), from one read. ``status`` pending: the jobs still retrying after a
    failure, grouped the same way (``first_seen``/``last_seen``: when they last failed)."""
    groups: dict[str, dict[str, Any]] = {}
    counts: dict[str, list[int]] = {}
    for job_id, type_name, last_error, history, moment in _failed(since, type, queue,
                                                                  status=status):
        exception, message = describe_failure(last_error, history)
        key = fingerprint(exception, message)
        if timeline is not None:
            i = timeline.index(moment)
            if i is not None:
                counts.setdefault(key, [0] * timeline.count)[i] += 1
        g = groups.get(key)
        if g is None:
            groups[key] = {"exception": exception, "message": message, "count": 1,
                           "first": moment, "last": moment, "types": {type_name},
                           "example": job_id}
            continue
        g["count"] += 1
        g["types"].add(type_name)
        if moment is not None and (g["first"] is None or moment < g["first"]):
            g["first"] = moment
        if moment is not None and (g["last"] is None or moment > g["last"]):
            g["last"], g["example"] = moment, job_id
    found = [FailureGroup(fingerprint=key, exception=g["exception"], message=g["message"],
                          count=g["count"], first_seen=g["first"], last_seen=g["last"],
                          types=sorted(g["types"]), example_job_id=g["example"])
             for key, g in groups.items()]
    found.sort(key=lambda g: (-g.count, -(g.last_seen.timestamp() if g.last_seen else 0)))
    return found, counts


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
    found = []
    for job_id, _, last_error, history, _ in _failed(None, type, queue, tags, tag_mode,
                                                     newest_first=limit is not None,
                                                     status=status):
        if fingerprint(*describe_failure(last_error, history)) == error_group:
            found.append(job_id)
            if limit is not None and len(found) >= limit:
                break
    return found

