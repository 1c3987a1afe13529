"""State changes asked for by people and code (not workers): cancel, retry, edit.

Each is a conditional UPDATE plus its events in one transaction, so it races safely with
workers: a job that a worker claimed meanwhile is simply not changed.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from .. import signals
from ..conf import get_settings
from ..models import Job, JobEvent, JobStatus
from ..models.clock import Now
from ..models.job import RESERVED
from ..models.transitions import CANCEL, EDIT, MANUAL_RETRY, RESUME, RUN_NOW, Transition
from ..registry import get_registry
from ..store import get_store
from . import validation as v
from .failures import failed_ids
from .jobs import check_tag_mode, filter_tags, jobs_queryset, parse_job_id

EDITABLE = frozenset({
    "payload", "priority", "run_at", "delay", "max_attempts", "max_retries", "tags",
    "retry_delay", "retry_backoff", "retry_multiplier", "retry_delay_max", "timeout", "queue",
})


def _after_commit(signal, job_ids: list, **kwargs: Any) -> None:
    """Send ``signal`` for each changed job once the caller's transaction commits."""
    if job_ids and signal.has_listeners():
        alias = get_store().alias
        jobs = list(Job.objects.using(alias).filter(id__in=job_ids))  # the state just written
        transaction.on_commit(
            lambda: [signal.send(sender=j.__class__, job=j, **kwargs) for j in jobs],
            using=alias,
        )


def _change(job_ids: list, transition: Transition, changes: dict[str, Any],
            data: dict[str, Any] | None = None, *, wake: bool = False) -> list:
    """Make ``transition`` (``models/transitions.py``: where it may start, where it ends, its
    event) for those of ``job_ids`` it allows, setting ``changes`` too, in one transaction;
    return the ids changed. ``wake``: the jobs may be due now, so wake the workers of their
    queues when the transaction commits."""
    allowed, event = transition.sources, transition.event
    changes = {**changes, "status": transition.target}
    store = get_store()
    alias = store.alias
    jobs = Job.objects.using(alias)
    with transaction.atomic(using=alias):
        if len(job_ids) == 1:
            n = jobs.filter(id=job_ids[0], status__in=allowed).update(**changes, updated_at=Now())
            done = list(job_ids) if n else []
        else:
            # One UPDATE for the batch, not one per job. Lock the rows that qualify first: a
            # worker's claim skips locked rows, and a row claimed meanwhile no longer qualifies
            # once we hold its lock (SQLite holds the write lock from BEGIN IMMEDIATE).
            done = list(jobs.filter(id__in=job_ids, status__in=allowed).order_by("id")
                        .select_for_update().values_list("id", flat=True))
            if done:
                jobs.filter(id__in=done, status__in=allowed).update(**changes, updated_at=Now())
        JobEvent.objects.using(alias).bulk_create(
            [JobEvent(job_id=j, type=event, data=data or {}) for j in done]
        )
        if wake and done and store.supports_notify:
            store.notify(set(jobs.filter(id__in=done).values_list("queue", flat=True)))
    return done


def cancel_job(job_id: Any) -> bool:
    """Cancel a pending or waiting job. False when it is in any other state or unknown."""
    return bool(cancel_jobs([job_id]))


def cancel_all_upcoming(type: str | None = None, queue: str | None = None,
                        tags: Any = None, tag_mode: str = "all") -> int:
    """Cancel every pending or waiting job matching the filters; returns how many."""
    check_tag_mode(tag_mode)
    qs = Job.objects.filter(status__in=(JobStatus.PENDING, JobStatus.WAITING))
    if type is not None:
        qs = qs.filter(type=type)
    if queue is not None:
        qs = qs.filter(queue=queue)
    if tags is not None:
        qs = filter_tags(qs, tags, tag_mode)
    return len(cancel_jobs(list(qs.values_list("id", flat=True))))


def retry_job(job_id: Any) -> bool:
    """Put a failed or cancelled job back to pending, due now, with a fresh attempt budget."""
    return bool(retry_jobs([job_id]))


def _check_schema(type_name: str | None, payload: Any, *, where: str) -> Any:
    """A new payload for a job of ``type_name``, checked against its schema like on enqueue."""
    job_type = get_registry().get(type_name) if type_name is not None else None
    if job_type is None or job_type.payload_schema is None:
        return payload
    return job_type.payload_schema.dump(payload, where=f"{where}({type_name!r})")


def _edit_values(changes: dict[str, Any], *, where: str, type_name: str | None) -> dict:
    """The columns ``changes`` sets on a pending job of ``type_name``, validated as on
    enqueue; raises ``ValueError`` naming the first bad one."""
    unknown = set(changes) - EDITABLE
    if unknown:
        raise ValueError(f"{where}: cannot edit {', '.join(sorted(unknown))}; editable: "
                         f"{', '.join(sorted(EDITABLE))}")
    values: dict[str, Any] = {}
    if "payload" in changes:
        import json

        payload = {} if changes["payload"] is None else changes["payload"]  # as enqueue does
        payload = _check_schema(type_name, payload, where=where)
        text = v.encode_payload(payload, max_bytes=get_settings().MAX_PAYLOAD_BYTES, where=where)
        values["payload"] = json.loads(text)
    opts = v.validate_options({k: changes[k] for k in ("queue", "priority", "retry_delay",
                                                       "retry_backoff", "retry_multiplier",
                                                       "retry_delay_max",
                                                       "timeout") if k in changes}, where=where)
    for name in ("queue", "priority", "retry_delay", "retry_backoff", "retry_delay_max"):
        if name in changes:
            if opts.get(name) is None:
                raise ValueError(f"{where}: {name} cannot be None")
            values[name] = opts[name]
    if "retry_backoff" in values:  # a new mode, with its own multiplier or its default
        values.update(v.resolve_backoff([(values["retry_backoff"],
                                          opts.get("retry_multiplier"))], False))
    elif "retry_multiplier" in changes:  # None: the mode's default
        values["retry_multiplier"] = opts.get("retry_multiplier")
    if "timeout" in changes:
        values["timeout"] = opts.get("timeout")
    if "max_attempts" in changes or "max_retries" in changes:
        attempts = v.resolve_attempts(changes.get("max_attempts"), changes.get("max_retries"),
                                      where=where)
        if attempts is None:  # the column has no "use the default": say so instead of failing
            raise ValueError(f"{where}: max_attempts cannot be None")
        values["max_attempts"] = attempts
    if "run_at" in changes or "delay" in changes:
        now = timezone.now()
        run_at = v.resolve_run_at(changes.get("delay"), changes.get("run_at"), now, where=where)
        # A delay (or run_at=None: now) counts from the database's clock, like every due time.
        values["run_at"] = run_at if changes.get("run_at") is not None else Now() + (run_at - now)
    if "tags" in changes:
        values["tags"] = v.validate_tags(changes["tags"], where=where)
    return values


def _edit(job_ids: list, values: dict[str, Any]) -> list:
    """Apply validated ``values`` to those of ``job_ids`` still pending, 500 per transaction;
    returns the ids changed."""
    data = {"fields": sorted(values)}
    wake = "run_at" in values or "queue" in values  # it may be due now, or due elsewhere
    done: list = []
    for chunk in _batches(job_ids):
        done.extend(_change(chunk, EDIT, values, data, wake=wake))
    return done


def edit_job(job_id: Any, **changes: Any) -> bool:
    """Change a pending job; False when it is not pending (or unknown). Bad values raise."""
    parsed = parse_job_id(job_id)
    type_name = (Job.objects.filter(id=parsed).values_list("type", flat=True).first()
                 if parsed is not None else None)
    values = _edit_values(changes, where="edit_job", type_name=type_name)
    if parsed is None or not values:
        return False
    return bool(_edit([parsed], values))


def edit_all_pending(type: str | None = None, queue: str | None = None, tags: Any = None,
                     tag_mode: str = "all", **changes: Any) -> int:
    """``edit_job(**changes)`` for every pending job matching the filters, 500 per
    transaction; returns how many were changed. Every value is checked first (a payload
    against the schema of each type matched), so a bad one changes nothing."""
    where = "edit_all_pending"
    _edit_values(changes, where=where, type_name=None)  # names a bad key before any read
    ids_by_type: dict[str, list] = {}
    for job_id, type_name in jobs_queryset(type, JobStatus.PENDING, queue, tags,
                                           tag_mode).values_list("id", "type"):
        ids_by_type.setdefault(type_name, []).append(job_id)
    values_by_type = {t: _edit_values(changes, where=where, type_name=t) for t in ids_by_type}
    if not changes:
        return 0
    return sum(len(_edit(ids, values_by_type[t])) for t, ids in ids_by_type.items())


def retry_all_failed(type: str | None = None, queue: str | None = None, tags: Any = None,
                     tag_mode: str = "all", error_group: str | None = None) -> int:
    """``retry_job`` for every failed job matching the filters and, with ``error_group`` (a
    ``FailureGroup.fingerprint`` from ``failure_groups()``), failing that way; returns how
    many were put back."""
    return len(retry_jobs(failed_ids(type=type, queue=queue, tags=tags, tag_mode=tag_mode,
                                     error_group=error_group)))


# -- batches (the admin's actions): the same changes, many ids per transaction ------------

BATCH = 500


def _batches(job_ids: Any) -> list[list]:
    parsed = [p for p in (parse_job_id(j) for j in job_ids) if p is not None]
    return [parsed[i:i + BATCH] for i in range(0, len(parsed), BATCH)]


def cancel_jobs(job_ids: Any) -> list:
    """Cancel many pending or waiting jobs, 500 per transaction; returns the ids cancelled.
    ``cancel_job`` and ``cancel_all_upcoming`` are this applied to one id / to a filter."""

    done: list = []
    store = get_store()
    for chunk in _batches(job_ids):
        with transaction.atomic(using=store.alias):
            changed = _change(chunk, CANCEL, {"completed_at": Now()})
            _after_commit(signals.job_cancelled, changed)
            # Their dependents are cancelled too (or run anyway), in the same transaction.
            store.settle(changed)
        done.extend(changed)
    return done


def retry_jobs(job_ids: Any) -> list:
    """Put many failed or cancelled jobs back to pending, due now, with a fresh attempt
    budget, 500 per transaction; returns the ids put back. ``retry_job`` is this applied to
    one id (the admin's Retry action and ``retry_job`` must not drift apart)."""

    done: list = []
    store = get_store()
    for chunk in _batches(job_ids):
        with transaction.atomic(using=store.alias):
            changed = _change(
                chunk, MANUAL_RETRY,
                {"run_at": Now(), "attempts": 0, "completed_at": None, "progress": None,
                 "expires_at": None},  # a retry asked for now: an expiry is over
                {"by": "retry_job"}, wake=True,
            )
            _after_commit(signals.job_retried, changed, error=None, delay=0)
            # The dependents their failure cancelled wait for them again.
            store.revive(changed)
        done.extend(changed)
    return done


def run_job_now(job_id: Any) -> bool:
    """Make a job due now: a pending job scheduled for later runs at once, and a job waiting
    for a time (``ctx.wait_for`` / ``wait_until``) ends its wait now, without using an attempt.

    False for a job waiting for a token (complete the token instead), a pending job that is
    already due, any other state, or an unknown id."""
    return bool(run_jobs_now([job_id]))


def run_jobs_now(job_ids: Any) -> list:
    """``run_job_now`` for many ids, 500 per transaction; returns the ids made due."""
    done: list = []
    for chunk in _batches(job_ids):
        done.extend(_run_now(chunk))
    return done


def _run_now(job_ids: list) -> list:
    store = get_store()
    alias = store.alias
    jobs = Job.objects.using(alias)
    wait_prefix = f"{RESERVED}wait:"
    with transaction.atomic(using=alias):
        # Scheduled for later: pull run_at in. The WHERE re-checks the state, so a job a worker
        # claimed meanwhile is left alone.
        later = list(jobs.filter(id__in=job_ids, status__in=RUN_NOW.sources, run_at__gt=Now())
                     .order_by("id").select_for_update().values_list("id", flat=True))
        if later:
            jobs.filter(id__in=later, status__in=RUN_NOW.sources).update(
                status=RUN_NOW.target, run_at=Now(), updated_at=Now())
        # Waiting for a time: the handler replays its stored deadline, so move that too.
        waiting = list(jobs.filter(id__in=job_ids, status__in=RESUME.sources, wait_token="")
                       .order_by("id").select_for_update().only("id", "steps"))
        resumed = []
        if waiting:
            now = store.db_now()
            for job in waiting:
                steps = dict(job.steps or {})
                for key, value in steps.items():
                    until = parse_datetime(value) if (key.startswith(wait_prefix)
                                                      and isinstance(value, str)) else None
                    if until is not None and until > now:
                        steps[key] = now.isoformat()
                if jobs.filter(id=job.id, status__in=RESUME.sources, wait_token="").update(
                        status=RESUME.target, run_at=Now(), steps=steps, updated_at=Now()):
                    resumed.append(job.id)
        JobEvent.objects.using(alias).bulk_create(
            [JobEvent(job_id=j, type=RUN_NOW.event,
                      data={"fields": ["run_at"], "by": "run_now"}) for j in later]
            + [JobEvent(job_id=j, type=RESUME.event, data={"reason": "run_now"})
               for j in resumed]
        )
        done = later + resumed
        if done and store.supports_notify:
            store.notify(set(jobs.filter(id__in=done).values_list("queue", flat=True)))
    return done
