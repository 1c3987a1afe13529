"""Cron schedules: the public API (add, edit, pause, trigger, sync). Fire times are
``crontimes.py`` (no Django), re-exported here.
"""

from __future__ import annotations

import difflib
import json
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any, NoReturn

from django.db import IntegrityError, transaction
from django.dispatch import Signal

from .. import signals
from ..conf import get_settings
from ..crontimes import get_zone, parse_expression
from ..exceptions import UnknownJobType
from ..models import CronOutcome, CronSchedule, Job
from ..registry import get_registry
from ..store import get_store
from ..store.cron import CronStore, cron_tag
from . import validation as v
from .enqueue import _write, build_job
from .limits import Limits, check_limits, merge

logger = logging.getLogger("django_edgejobs.scheduler")

MAX_NAME_LENGTH = v.MAX_TAG_LENGTH - len("cron:")
#: Job options a schedule passes to its jobs (None / "": the job type's default).
JOB_OPTIONS = ("queue", "priority", "max_attempts", "retry_delay", "retry_backoff",
               "retry_multiplier", "retry_delay_max", "timeout")
#: Flow-control options a schedule passes to its jobs ("" / None: the job type's).
LIMIT_OPTIONS = ("concurrency_key", "concurrency_limit", "rate_limit", "rate_key")
#: What add_cron / edit_cron / an EDGEJOBS["CRON"] entry may set.
DEFINITION_KEYS = ("cron", "type", "payload", "timezone", "allow_overlap", "enabled", "tags",
                   *JOB_OPTIONS, *LIMIT_OPTIONS, "metadata")
#: What only creates: an add_cron argument and an EDGEJOBS["CRON"] key, not a definition
#: (edit_cron refuses it: it says what happens when the schedule is created).
CREATE_KEYS = ("run_on_init",)
STATUSES = ("active", "paused")
# -- definitions ---------------------------------------------------------------------------

def check_name(name: Any, *, where: str) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{where}: a schedule name must be a non-empty string, got {name!r}")
    if len(name) > MAX_NAME_LENGTH:
        raise ValueError(f"{where}: a schedule name has at most {MAX_NAME_LENGTH} characters "
                         "(its jobs carry the tag 'cron:<name>')")
    if "\x00" in name:
        raise ValueError(f"{where}: a schedule name cannot contain a NUL character: {name!r}")
    return name


def check_type(name: Any, *, where: str) -> str:
    v.validate_type(name, where=where)
    try:
        get_registry().require(name)
    except UnknownJobType as exc:
        raise UnknownJobType(f"{where}: {exc}") from None
    return name


def clean_definition(values: Mapping[str, Any], *, where: str) -> dict[str, Any]:
    """Validate a whole schedule definition (plus ``CREATE_KEYS``, checked and left out);
    return the model's column values."""
    known = (*DEFINITION_KEYS, *CREATE_KEYS)
    unknown = [k for k in values if k not in known]
    if unknown:
        close = difflib.get_close_matches(str(unknown[0]), known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"{where}: unknown option {unknown[0]!r}{hint} (known: "
                         f"{', '.join(known)})")
    for key in ("cron", "type"):
        if key not in values:
            raise ValueError(f"{where}: {key!r} is required")
    out: dict[str, Any] = {
        "cron": parse_expression(values["cron"], where=where),
        "timezone": get_zone(values.get("timezone", "UTC"), where=where).key,
        "type": check_type(values["type"], where=where),
    }
    payload = values.get("payload")
    text = v.encode_payload({} if payload is None else payload,
                            max_bytes=get_settings().MAX_PAYLOAD_BYTES, where=where)
    out["payload"] = json.loads(text)
    opts = v.validate_options({k: values.get(k) for k in JOB_OPTIONS}, where=where)
    out.update(opts)
    out["queue"] = opts["queue"] or ""
    # A mode name has its own column; True, False and None stay as given in retry_backoff.
    backoff = opts["retry_backoff"]
    out["retry_mode"] = backoff if isinstance(backoff, str) else ""
    if isinstance(backoff, str):
        out["retry_backoff"] = backoff != "fixed"
    out["tags"] = v.validate_tags(values.get("tags"), where=where)
    out.update(_clean_limits(values, out["type"], where=where))
    out["metadata"] = v.validate_metadata(values.get("metadata"), where=where)
    for flag, default in (("allow_overlap", False), ("enabled", True), ("run_on_init", False)):
        value = values.get(flag, default)
        if not isinstance(value, bool):
            raise ValueError(f"{where}: {flag} must be True or False, got {value!r}")
        out[flag] = value
    del out["run_on_init"]  # not a column: a creation's instruction
    return out


def _clean_limits(values: Mapping[str, Any], type: str, *, where: str) -> dict[str, Any]:
    """The flow-control columns: keys are templates (a schedule is stored, a callable is
    not), the rate is its text; checked with the job type's own limits."""
    given = {k: values.get(k) or None for k in LIMIT_OPTIONS}
    for key in ("concurrency_key", "rate_key"):
        if given[key] is not None and not isinstance(given[key], str):
            raise ValueError(f"{where}: {key} must be a string template, got {given[key]!r}")
    if given["rate_limit"] is not None and not isinstance(given["rate_limit"], str):
        raise ValueError(f"{where}: rate_limit must be 'N/s', 'N/m' or 'N/h', got "
                         f"{given['rate_limit']!r}")
    job_type = get_registry().require(type)
    merge(job_type.limits or Limits(), check_limits(given, where=where), where=where)
    return {"concurrency_key": given["concurrency_key"] or "",
            "concurrency_limit": given["concurrency_limit"],
            "rate_limit": (given["rate_limit"] or "").strip(),
            "rate_key": given["rate_key"] or ""}


def _definition(schedule: Any) -> dict[str, Any]:
    """A stored schedule's definition, as add_cron takes it."""
    values = {k: getattr(schedule, k) for k in DEFINITION_KEYS}
    values["queue"] = values["queue"] or None
    values["retry_backoff"] = schedule.backoff
    return values


def build_cron_job(schedule: Any, run_at: datetime | None = None):
    """An unsaved Job of this schedule: its type, payload and options, the tag cron:<name>."""
    options = {k: getattr(schedule, k) for k in JOB_OPTIONS}
    options["queue"] = schedule.queue or None
    options["retry_backoff"] = schedule.backoff
    options.update({k: getattr(schedule, k) for k in LIMIT_OPTIONS if getattr(schedule, k)})
    # A payload the type's schema refuses is an error tick with the reason (or an error from
    # trigger_cron), whatever the type's on_invalid says: a schedule's payload is its owner's.
    return build_job(schedule.type, schedule.payload, where=f"cron {schedule.name!r}",
                     on_invalid="raise",
                     tags=[*schedule.tags, cron_tag(schedule.name)], run_at=run_at, **options)


# -- the API -------------------------------------------------------------------------------

def _schedules():
    return CronSchedule.objects.using(get_store().alias)


def send_on_commit(signal: Signal, **kwargs: Any) -> None:
    """Send a cron signal once the current transaction commits (at once outside one)."""
    if signal.has_listeners(CronSchedule):
        transaction.on_commit(lambda: signal.send(sender=CronSchedule, **kwargs),
                              using=get_store().alias)


def _enabled_changed(schedule: Any, was_enabled: bool) -> None:
    """Send cron_scheduled / cron_unscheduled for a schedule whose ``enabled`` was written."""
    if schedule.enabled and not was_enabled:
        send_on_commit(signals.cron_scheduled, schedule=schedule, created=False)
    elif was_enabled and not schedule.enabled:
        send_on_commit(signals.cron_unscheduled, schedule=schedule, removed=False)


def add_cron(name: str, cron: str, type: str, payload: Any = None, *, timezone: str = "UTC",
             allow_overlap: bool = False, queue: str | None = None, priority: int | None = None,
             tags: Any = (), max_attempts: int | None = None, retry_delay: float | None = None,
             retry_backoff: bool | str | None = None, retry_multiplier: float | None = None,
             retry_delay_max: float | None = None, timeout: float | None = None,
             enabled: bool = True, concurrency_key: str | None = None,
             concurrency_limit: int | None = None, rate_limit: str | None = None,
             rate_key: str | None = None, metadata: dict[str, Any] | None = None,
             run_on_init: bool = False):
    """Create a schedule; returns the CronSchedule. Bad input raises ValueError naming it.

    ``run_on_init=True``: enqueue one run at once, in the transaction that creates the
    schedule (unless it is created paused, or ``allow_overlap`` is off and a run of a former
    schedule of that name is still active); never again. ``metadata``: a JSON object kept
    with the schedule for people and tools."""
    where = f"add_cron({name!r})"
    check_name(name, where=where)
    values = clean_definition({
        "cron": cron, "type": type, "payload": payload, "timezone": timezone,
        "allow_overlap": allow_overlap, "enabled": enabled, "tags": tags, "queue": queue,
        "priority": priority, "max_attempts": max_attempts, "retry_delay": retry_delay,
        "retry_backoff": retry_backoff, "retry_multiplier": retry_multiplier,
        "retry_delay_max": retry_delay_max, "timeout": timeout,
        "concurrency_key": concurrency_key, "concurrency_limit": concurrency_limit,
        "rate_limit": rate_limit, "rate_key": rate_key, "metadata": metadata,
        "run_on_init": run_on_init,
    }, where=where)
    store = get_store()
    if _schedules().filter(name=name).exists():
        raise ValueError(f"{where}: a schedule named {name!r} already exists; change it with "
                         "edit_cron or remove it with remove_cron first")
    try:
        with transaction.atomic(using=store.alias):
            return _create(name, values, run_on_init=run_on_init)
    except IntegrityError:  # created meanwhile by someone else
        raise ValueError(f"{where}: a schedule named {name!r} already exists") from None


def _create(name: str, values: dict[str, Any], *, run_on_init: bool, **extra: Any) -> Any:
    """Insert a schedule (inside the caller's transaction) and, with ``run_on_init``, its
    first run; the signals follow the commit. A concurrent creation of the same name raises
    IntegrityError at the insert, before any run is written, and rolls this one back."""
    now = get_store().db_now()
    schedule = _schedules().create(name=name, active_since=now, created_at=now,
                                   updated_at=now, **extra, **values)
    if schedule.enabled:
        send_on_commit(signals.cron_scheduled, schedule=schedule, created=True)
        if run_on_init:
            _start_run(CronStore(get_store()), schedule, CronOutcome.INITIAL)
    return schedule


def edit_cron(name: str, **changes: Any) -> bool:
    """Change a schedule's definition; False when there is no such schedule.

    A new expression or time zone, like a resume, starts afresh: ticks before the edit never
    fire as catch-up. A new ``retry_backoff`` without ``retry_multiplier`` resets the
    multiplier to the mode's default. ``run_on_init`` is refused: it only says what happens
    when a schedule is created (``trigger_cron`` runs one now)."""
    where = f"edit_cron({name!r})"
    if "run_on_init" in changes:
        raise ValueError(f"{where}: run_on_init applies only when a schedule is created "
                         "(add_cron, EDGEJOBS['CRON']); use trigger_cron to run it now")
    if "retry_backoff" in changes and "retry_multiplier" not in changes:
        changes = {**changes, "retry_multiplier": None}
    store = get_store()
    with transaction.atomic(using=store.alias):
        found = _schedules().filter(name=name).first()
        # Lock the row, then read it: concurrent edits, pauses and syncs take turns.
        schedule = (_schedules().filter(pk=found.pk).first()
                    if found is not None and CronStore(store).lock(found) else None)
        if schedule is None:
            return False
        values = clean_definition({**_definition(schedule), **changes}, where=where)
        _save(schedule, values)
    return True


def _save(schedule: Any, values: dict[str, Any], **extra: Any) -> None:
    """Write changed columns; a new expression, zone or enabling restarts ``active_since``.
    Inside a transaction holding the row's lock (so a change of ``enabled`` is signalled
    once)."""
    store = get_store()
    was_enabled = schedule.enabled
    fresh = (values["cron"] != schedule.cron or values["timezone"] != schedule.timezone
             or (values["enabled"] and not schedule.enabled))
    changed = {k: val for k, val in {**values, **extra}.items() if getattr(schedule, k) != val}
    if not changed:
        return
    now = store.db_now()
    if fresh:
        changed["active_since"] = now
    changed["updated_at"] = now
    for key, value in changed.items():
        setattr(schedule, key, value)
    schedule.save(using=store.alias, update_fields=list(changed))
    _enabled_changed(schedule, was_enabled)


def _set_enabled(name: str, enabled: bool) -> bool:
    store = get_store()
    changes: dict[str, Any] = {"enabled": enabled, "updated_at": store.db_now()}
    if enabled:
        changes["active_since"] = changes["updated_at"]  # paused ticks are not caught up
    with transaction.atomic(using=store.alias):
        # A compare-and-set: of concurrent pauses (or resumes), one changes the row.
        if not _schedules().filter(name=name, enabled=not enabled).update(**changes):
            return False
        if signals.cron_scheduled.has_listeners() or signals.cron_unscheduled.has_listeners():
            _enabled_changed(_schedules().get(name=name), not enabled)
    return True


def pause_cron(name: str) -> bool:
    """Stop a schedule firing; False when it is unknown or already paused."""
    return _set_enabled(name, False)


def resume_cron(name: str) -> bool:
    """Let a paused schedule fire again from its next tick (ticks missed while paused never
    fire); False when it is unknown or not paused."""
    return _set_enabled(name, True)


def remove_cron(name: str) -> bool:
    """Delete a schedule and its tick history (its jobs stay); False when unknown."""
    schedule = _schedules().filter(name=name).first()
    if schedule is None:
        return False
    with transaction.atomic(using=get_store().alias):
        deleted = _schedules().filter(pk=schedule.pk).delete()[1]
        if not deleted.get(CronSchedule._meta.label):  # removed meanwhile
            return False
        send_on_commit(signals.cron_unscheduled, schedule=schedule, removed=True)
    return True


def list_crons(status: str | None = None) -> list:
    """Schedules by name: all, or only ``"active"`` or ``"paused"`` ones."""
    if status is not None and status not in STATUSES:
        raise ValueError(f"list_crons: status must be 'active', 'paused' or None, got {status!r}")
    qs = _schedules()
    if status is not None:
        qs = qs.filter(enabled=status == "active")
    return list(qs.order_by("name"))


def trigger_cron(name: str):
    """Enqueue one run of the schedule now, paused or not; returns the Job.

    With ``allow_overlap=False`` (the default), while a previous run of the schedule (a tick's
    or a trigger's) is pending, waiting or processing, no second run starts and that run is
    returned instead, as an existing ``idempotency_key`` returns its job. Concurrent triggers
    and ticks of one schedule take turns on its row, so at most one of them starts a run."""
    return run_now(name)[0]


def run_now(name: str) -> tuple[Any, bool]:
    """``trigger_cron``, also saying whether it started a run: ``(job, started)``."""
    found = _schedules().filter(name=name).first()
    if found is None:
        _no_schedule(name)
    store = get_store()
    cron = CronStore(store)

    def run() -> tuple[Any, bool]:
        with transaction.atomic(using=store.alias):
            # Lock the row, then read it: a concurrent trigger or tick waits until this one
            # has written its job, and then finds it active.
            schedule = _schedules().filter(pk=found.pk).first() if cron.lock(found) else None
            if schedule is None:  # removed meanwhile
                _no_schedule(name)
            return _start_run(cron, schedule, CronOutcome.TRIGGERED)

    job, started = store.retrying(run)
    if not started:
        logger.info("cron %s: trigger_cron started no run: the previous run %s is %s "
                    "(allow_overlap is off)", name, job.id, job.status)
    return job, started


def _start_run(cron: CronStore, schedule: Any, outcome: str) -> tuple[Any, bool]:
    """Enqueue a run that is not a tick's (``outcome``: triggered, initial), inside a
    transaction holding the schedule row's lock; with ``allow_overlap`` off and a run still
    active, return that one instead: ``(job, started)``."""
    active = None if schedule.allow_overlap else cron.active_run(schedule)
    if active is not None:
        if outcome == CronOutcome.INITIAL:
            cron.note_run(schedule, None, CronOutcome.SKIPPED)
        return Job.objects.using(cron.alias).get(pk=active.pk), False
    job = _write([build_cron_job(schedule)])[0]
    cron.note_run(schedule, job.id, outcome)
    send_on_commit(signals.cron_fired, schedule=schedule, job=job, tick_at=None,
                   triggered=True, initial=outcome == CronOutcome.INITIAL)
    return job, True


def _no_schedule(name: Any) -> NoReturn:
    names = list(_schedules().values_list("name", flat=True))
    close = difflib.get_close_matches(name, names, n=1) if isinstance(name, str) else []
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"trigger_cron: no schedule named {name!r}{hint}")


# -- schedules declared in settings --------------------------------------------------------

def sync_declared(declared: Mapping[str, Any] | None = None) -> dict[str, list[str]]:
    """Create or update the schedules of ``EDGEJOBS["CRON"]`` by name (a worker does this when
    it starts); pause schedules that were declared and no longer are.

    Settings own a declared schedule's definition, people own its state: when an entry is
    unchanged since the last sync nothing is written, so edit_cron/pause_cron changes last
    until the entry itself changes; ``enabled`` is applied only when it changed in settings,
    on creation, and when an undeclared schedule is declared again. ``run_on_init`` runs only
    with the creation (of many workers syncing at once, one creates). Invalid entries (the
    system check reports them) are logged and skipped. Returns the names per action."""
    declared = get_settings().CRON if declared is None else declared
    done: dict[str, list[str]] = {"created": [], "updated": [], "undeclared": [], "invalid": []}
    for name, entry in declared.items():
        where = f"EDGEJOBS['CRON'][{name!r}]"
        try:
            check_name(name, where=where)
            if not isinstance(entry, Mapping):
                raise ValueError(f"{where} must be a dict, got {type(entry).__name__}")
            values = clean_definition(entry, where=where)
            if entry.get("run_on_init"):  # its run must be buildable (payload templates...)
                build_cron_job(CronSchedule(name=name, **values))
            # As stored in the JSON column, so an unchanged entry compares equal next time.
            entry = json.loads(json.dumps(dict(entry), default=str, sort_keys=True))
        except ValueError as exc:
            logger.error("%s; this schedule is not synced", exc)
            done["invalid"].append(name)
            continue
        for _ in range(3):  # a concurrent worker may create the same name first
            try:
                action = _sync_one(name, entry, values)
                break
            except IntegrityError:
                continue
        else:  # pragma: no cover - three lost races in a row
            raise RuntimeError(f"could not sync {where}")
        if action:
            done[action].append(name)
    done["undeclared"] = _undeclare(list(declared))
    if done["undeclared"]:
        logger.warning("cron schedule(s) %s are no longer in EDGEJOBS['CRON']: paused; delete "
                       "them with remove_cron", ", ".join(done["undeclared"]))
    return done


def _undeclare(declared: list[str]) -> list[str]:
    """Pause the schedules from settings whose names are not ``declared``; return the names
    this call changed (each row is a compare-and-set on its source, so of concurrent syncs
    one changes it, and signals its pause if it was enabled)."""
    gone = _schedules().filter(source=CronSchedule.Source.SETTINGS).exclude(name__in=declared)
    done = []
    for schedule in gone.order_by("name"):
        row = _schedules().filter(pk=schedule.pk, source=CronSchedule.Source.SETTINGS)
        changes = {"source": CronSchedule.Source.UNDECLARED, "enabled": False,
                   "updated_at": get_store().db_now()}
        if row.filter(enabled=True).update(**changes):
            schedule.source, schedule.enabled = changes["source"], False
            send_on_commit(signals.cron_unscheduled, schedule=schedule, removed=False)
        elif not row.update(**changes):
            continue  # another sync did it
        done.append(schedule.name)
    return done


def _sync_one(name: str, entry: dict[str, Any], values: dict[str, Any]) -> str | None:
    store = get_store()
    with transaction.atomic(using=store.alias):
        schedule = _schedules().select_for_update().filter(name=name).first()
        if schedule is None:
            _create(name, values, run_on_init=bool(entry.get("run_on_init")),
                    source=CronSchedule.Source.SETTINGS, declaration=entry)
            return "created"
        if schedule.source == CronSchedule.Source.SETTINGS and schedule.declaration == entry:
            return None
        was_declared = schedule.source == CronSchedule.Source.SETTINGS
        old_enabled = (schedule.declaration or {}).get("enabled", True)
        if was_declared and values["enabled"] == old_enabled:
            values["enabled"] = schedule.enabled  # a pause or resume by hand stands
        _save(schedule, values, source=CronSchedule.Source.SETTINGS, declaration=entry)
        return "updated"
