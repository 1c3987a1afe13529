"""Cron schedules: fire times in a time zone (croniter + zoneinfo) and the public API.

Fire times follow the local wall clock of the schedule's zone, with one rule for the two
daylight-saving transitions (docs/explanation/cron.md):

- a local time skipped by a spring-forward gap fires once, at the first valid instant after
  the gap (``30 2 * * *`` fires at 03:00 on the night New York springs forward);
- a local time repeated by a fall-back fires once, at its first occurrence.

So fire times strictly increase, and every wall-clock match fires exactly once.
"""

from __future__ import annotations

import difflib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.db import IntegrityError, transaction

from ..conf import get_settings
from ..exceptions import UnknownJobType
from ..registry import get_registry
from . import validation as v

logger = logging.getLogger("django_edgejobs.scheduler")

ALIASES = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
FIELDS_HINT = ("5 fields (minute hour day-of-month month day-of-week), or 6 with seconds as "
               "the last field, e.g. '0 9 * * 1-5' or '*/10 * * * * 30'")
MAX_NAME_LENGTH = v.MAX_TAG_LENGTH - len("cron:")
#: Job options a schedule passes to its jobs (None / "": the job type's default).
JOB_OPTIONS = ("queue", "priority", "max_attempts", "retry_delay", "retry_backoff",
               "retry_delay_max", "timeout")
#: What add_cron / edit_cron / an EDGEJOBS["CRON"] entry may set.
DEFINITION_KEYS = ("cron", "type", "payload", "timezone", "allow_overlap", "enabled", "tags",
                   *JOB_OPTIONS)
STATUSES = ("active", "paused")


# -- expressions and fire times ------------------------------------------------------------

def parse_expression(expression: Any, *, where: str = "cron") -> str:
    """Check a cron expression; return it with its whitespace normalised."""
    from croniter import CroniterBadCronError, CroniterBadDateError, croniter

    if not isinstance(expression, str) or not expression.strip():
        raise ValueError(f"{where}: the cron expression must be a non-empty string, got "
                         f"{expression!r}; use {FIELDS_HINT}")
    text = " ".join(expression.split())
    expanded = ALIASES.get(text.lower(), text)
    count = len(expanded.split())
    if count not in (5, 6):
        raise ValueError(f"{where}: invalid cron expression {expression!r}: it has {count} "
                         f"field(s); use {FIELDS_HINT}")
    try:
        croniter(expanded, datetime(2000, 1, 1)).get_next(datetime)
    except CroniterBadDateError:
        raise ValueError(f"{where}: cron expression {expression!r} never fires") from None
    except (CroniterBadCronError, ValueError, KeyError) as exc:
        raise ValueError(f"{where}: invalid cron expression {expression!r}: {exc}; use "
                         f"{FIELDS_HINT}") from None
    return text


def get_zone(name: Any, *, where: str = "cron") -> ZoneInfo:
    """The zone of an IANA name, or ValueError naming the problem (with a did-you-mean)."""
    if isinstance(name, str) and name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    hint = ""
    if isinstance(name, str):
        from zoneinfo import available_timezones

        close = difflib.get_close_matches(name, sorted(available_timezones()), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"{where}: unknown time zone {name!r}{hint} (use an IANA name such as "
                     "'UTC' or 'America/New_York')")


@dataclass(frozen=True)
class CronTimes:
    """Fire times of one cron expression in one zone. Methods take aware datetimes and return
    them in UTC: Python's ``==`` between zones is always False for a repeated local time
    (PEP 495), so fire times are compared, stored and deduplicated as UTC instants."""

    expression: str  # as written (an alias like '@daily' kept)
    zone: ZoneInfo

    @classmethod
    def parse(cls, expression: str, timezone: str = "UTC", *, where: str = "cron") -> CronTimes:
        return cls(parse_expression(expression, where=where), get_zone(timezone, where=where))

    @property
    def fields(self) -> str:
        return ALIASES.get(self.expression.lower(), self.expression)

    def next(self, after: datetime) -> datetime:
        """The first fire time strictly after ``after``."""
        from croniter import croniter

        start = self._wall_bound(after).replace(microsecond=0)
        it = croniter(self.fields, start)
        for _ in range(10_000):  # one step, unless a match maps to ``after`` or before it
            fire = self._instant(it.get_next(datetime))
            if fire > after:
                return fire
        raise RuntimeError(f"no fire time of {self.expression!r} after {after}")  # pragma: no cover

    def prev(self, at: datetime) -> datetime | None:
        """The last fire time at or before ``at`` (None if none within croniter's range)."""
        from croniter import CroniterBadDateError, croniter

        start = self._wall_bound(at).replace(microsecond=0) + timedelta(seconds=1)
        try:
            return self._instant(croniter(self.fields, start).get_prev(datetime))
        except CroniterBadDateError:
            return None

    def upcoming(self, after: datetime, n: int) -> list[datetime]:
        out: list[datetime] = []
        for _ in range(n):
            after = self.next(after)
            out.append(after)
        return out

    def describe(self) -> str:
        """The expression in words (cron-descriptor), with the zone."""
        from cron_descriptor import Options, get_description

        fields = self.fields.split()
        if len(fields) == 6:  # cron-descriptor reads seconds first
            fields = [fields[5], *fields[:5]]
        options = Options()
        options.use_24hour_time_format = True
        try:
            text = get_description(" ".join(fields), options)
        except Exception:  # a description is a nicety, never an error
            text = self.expression
        return f"{text} ({self.zone.key})"

    # The wall-clock mapping. ``_instant`` sends a local (naive) match to its fire instant:
    # itself, the first occurrence if repeated, the end of the gap if skipped. That map never
    # decreases, so "matches that fire at or before T" are the matches up to one wall time,
    # ``_wall_bound(T)``, and croniter can search from there in either direction.

    def _instant(self, naive: datetime) -> datetime:
        instant = naive.replace(tzinfo=self.zone).astimezone(UTC)  # fold=0: first occurrence
        if instant.astimezone(self.zone).replace(tzinfo=None) == naive:
            return instant
        # Skipped (spring forward): fold=1 reads it with the offset after the gap (earlier
        # instant), fold=0 with the one before (later instant); the gap ends between them.
        lo = naive.replace(tzinfo=self.zone, fold=1).astimezone(UTC)
        return self._transition(lo, instant)

    def _wall_bound(self, at: datetime) -> datetime:
        local = at.astimezone(self.zone)
        wall = local.replace(tzinfo=None)
        if not local.fold:
            return wall
        # The second pass of a repeated hour: its wall times all fired in the first pass, so
        # the bound is just before the wall time at which the repetition ends.
        before = local.replace(fold=0).utcoffset()
        after = local.utcoffset()
        assert before is not None and after is not None
        began = self._transition(at.astimezone(UTC) - (before - after), at.astimezone(UTC))
        return (began + before).replace(tzinfo=None) - timedelta(microseconds=1)

    def _transition(self, lo: datetime, hi: datetime) -> datetime:
        """The first whole second in (lo, hi] with hi's UTC offset (zone changes happen on
        whole seconds; ``lo`` has the other offset)."""
        target = hi.astimezone(self.zone).utcoffset()
        a, b = int(lo.timestamp() // 1), -int(-hi.timestamp() // 1)
        while b - a > 1:
            mid = (a + b) // 2
            if datetime.fromtimestamp(mid, self.zone).utcoffset() == target:
                b = mid
            else:
                a = mid
        return datetime.fromtimestamp(b, UTC)


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
    """Validate a whole schedule definition; return the model's column values."""
    unknown = [k for k in values if k not in DEFINITION_KEYS]
    if unknown:
        close = difflib.get_close_matches(str(unknown[0]), DEFINITION_KEYS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"{where}: unknown option {unknown[0]!r}{hint} (known: "
                         f"{', '.join(DEFINITION_KEYS)})")
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
    out["tags"] = v.validate_tags(values.get("tags"), where=where)
    for flag, default in (("allow_overlap", False), ("enabled", True)):
        value = values.get(flag, default)
        if not isinstance(value, bool):
            raise ValueError(f"{where}: {flag} must be True or False, got {value!r}")
        out[flag] = value
    return out


def _definition(schedule: Any) -> dict[str, Any]:
    """A stored schedule's definition, as add_cron takes it."""
    values = {k: getattr(schedule, k) for k in DEFINITION_KEYS}
    values["queue"] = values["queue"] or None
    return values


def build_cron_job(schedule: Any, run_at: datetime | None = None):
    """An unsaved Job of this schedule: its type, payload and options, the tag cron:<name>."""
    from ..store.cron import cron_tag
    from .enqueue import build_job

    options = {k: getattr(schedule, k) for k in JOB_OPTIONS}
    options["queue"] = schedule.queue or None
    return build_job(schedule.type, schedule.payload, where=f"cron {schedule.name!r}",
                     tags=[*schedule.tags, cron_tag(schedule.name)], run_at=run_at, **options)


# -- the API -------------------------------------------------------------------------------

def _store():
    from ..store import get_store

    return get_store()


def _schedules():
    from ..models import CronSchedule

    return CronSchedule.objects.using(_store().alias)


def add_cron(name: str, cron: str, type: str, payload: Any = None, *, timezone: str = "UTC",
             allow_overlap: bool = False, queue: str | None = None, priority: int | None = None,
             tags: Any = (), max_attempts: int | None = None, retry_delay: float | None = None,
             retry_backoff: bool | None = None, retry_delay_max: float | None = None,
             timeout: float | None = None, enabled: bool = True):
    """Create a schedule; returns the CronSchedule. Bad input raises ValueError naming it."""
    where = f"add_cron({name!r})"
    check_name(name, where=where)
    values = clean_definition({
        "cron": cron, "type": type, "payload": payload, "timezone": timezone,
        "allow_overlap": allow_overlap, "enabled": enabled, "tags": tags, "queue": queue,
        "priority": priority, "max_attempts": max_attempts, "retry_delay": retry_delay,
        "retry_backoff": retry_backoff, "retry_delay_max": retry_delay_max, "timeout": timeout,
    }, where=where)
    store = _store()
    if _schedules().filter(name=name).exists():
        raise ValueError(f"{where}: a schedule named {name!r} already exists; change it with "
                         "edit_cron or remove it with remove_cron first")
    now = store.db_now()
    try:
        with transaction.atomic(using=store.alias):
            return _schedules().create(name=name, active_since=now, created_at=now,
                                       updated_at=now, **values)
    except IntegrityError:  # created meanwhile by someone else
        raise ValueError(f"{where}: a schedule named {name!r} already exists") from None


def edit_cron(name: str, **changes: Any) -> bool:
    """Change a schedule's definition; False when there is no such schedule.

    A new expression or time zone, like a resume, starts afresh: ticks before the edit never
    fire as catch-up."""
    where = f"edit_cron({name!r})"
    schedule = _schedules().filter(name=name).first()
    if schedule is None:
        return False
    values = clean_definition({**_definition(schedule), **changes}, where=where)
    _save(schedule, values)
    return True


def _save(schedule: Any, values: dict[str, Any], **extra: Any) -> None:
    """Write changed columns; a new expression, zone or enabling restarts ``active_since``."""
    store = _store()
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


def _set_enabled(name: str, enabled: bool) -> bool:
    changes: dict[str, Any] = {"enabled": enabled, "updated_at": _store().db_now()}
    if enabled:
        changes["active_since"] = changes["updated_at"]  # paused ticks are not caught up
    return bool(_schedules().filter(name=name, enabled=not enabled).update(**changes))


def pause_cron(name: str) -> bool:
    """Stop a schedule firing; False when it is unknown or already paused."""
    return _set_enabled(name, False)


def resume_cron(name: str) -> bool:
    """Let a paused schedule fire again from its next tick (ticks missed while paused never
    fire); False when it is unknown or not paused."""
    return _set_enabled(name, True)


def remove_cron(name: str) -> bool:
    """Delete a schedule and its tick history (its jobs stay); False when unknown."""
    return bool(_schedules().filter(name=name).delete()[0])


def list_crons(status: str | None = None) -> list:
    """Schedules by name: all, or only ``"active"`` or ``"paused"`` ones."""
    if status is not None and status not in STATUSES:
        raise ValueError(f"list_crons: status must be 'active', 'paused' or None, got {status!r}")
    qs = _schedules()
    if status is not None:
        qs = qs.filter(enabled=status == "active")
    return list(qs.order_by("name"))


def trigger_cron(name: str):
    """Enqueue one run of the schedule now (paused or not, overlap or not); returns the Job."""
    from ..store.cron import CronStore
    from .enqueue import _write

    schedule = _schedules().filter(name=name).first()
    if schedule is None:
        names = list(_schedules().values_list("name", flat=True))
        close = difflib.get_close_matches(name, names, n=1) if isinstance(name, str) else []
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"trigger_cron: no schedule named {name!r}{hint}")
    job = build_cron_job(schedule)
    store = _store()
    with transaction.atomic(using=store.alias):
        job = _write([job])[0]
        CronStore(store).note_trigger(schedule, job.id)
    return job


# -- schedules declared in settings --------------------------------------------------------

def sync_declared(declared: Mapping[str, Any] | None = None) -> dict[str, list[str]]:
    """Create or update the schedules of ``EDGEJOBS["CRON"]`` by name (a worker does this when
    it starts); pause schedules that were declared and no longer are.

    Settings own a declared schedule's definition, people own its state: when an entry is
    unchanged since the last sync nothing is written, so edit_cron/pause_cron changes last
    until the entry itself changes; ``enabled`` is applied only when it changed in settings,
    on creation, and when an undeclared schedule is declared again. Invalid entries (the
    system check reports them) are logged and skipped. Returns the names per action."""
    from ..models import CronSchedule

    declared = get_settings().CRON if declared is None else declared
    done: dict[str, list[str]] = {"created": [], "updated": [], "undeclared": [], "invalid": []}
    for name, entry in declared.items():
        where = f"EDGEJOBS['CRON'][{name!r}]"
        try:
            check_name(name, where=where)
            if not isinstance(entry, Mapping):
                raise ValueError(f"{where} must be a dict, got {type(entry).__name__}")
            values = clean_definition(entry, where=where)
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
    gone = _schedules().filter(source=CronSchedule.Source.SETTINGS).exclude(name__in=list(declared))
    done["undeclared"] = sorted(gone.values_list("name", flat=True))
    if done["undeclared"]:
        gone.update(source=CronSchedule.Source.UNDECLARED, enabled=False,
                    updated_at=_store().db_now())
        logger.warning("cron schedule(s) %s are no longer in EDGEJOBS['CRON']: paused; delete "
                       "them with remove_cron", ", ".join(done["undeclared"]))
    return done


def _sync_one(name: str, entry: dict[str, Any], values: dict[str, Any]) -> str | None:
    from ..models import CronSchedule

    store = _store()
    with transaction.atomic(using=store.alias):
        schedule = _schedules().select_for_update().filter(name=name).first()
        if schedule is None:
            now = store.db_now()
            _schedules().create(name=name, source=CronSchedule.Source.SETTINGS,
                                declaration=entry, active_since=now, created_at=now,
                                updated_at=now, **values)
            return "created"
        if schedule.source == CronSchedule.Source.SETTINGS and schedule.declaration == entry:
            return None
        was_declared = schedule.source == CronSchedule.Source.SETTINGS
        old_enabled = (schedule.declaration or {}).get("enabled", True)
        if was_declared and values["enabled"] == old_enabled:
            values["enabled"] = schedule.enabled  # a pause or resume by hand stands
        _save(schedule, values, source=CronSchedule.Source.SETTINGS, declaration=entry)
        return "updated"
