"""Cron fire times in a time zone (croniter + zoneinfo).

Fire times follow the local wall clock of the schedule's zone, with one rule for the two
daylight-saving transitions (docs/explanation/cron.md):

- a local time skipped by a spring-forward gap fires once, at the first valid instant after
  the gap (``30 2 * * *`` fires at 03:00 on the night New York springs forward);
- a local time repeated by a fall-back fires once, at its first occurrence.

So fire times strictly increase, and every wall-clock match fires exactly once.

Django-free: models (``CronSchedule.times``), services and the scheduler all read it.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["ALIASES", "FIELDS", "FIELDS_HINT", "CronTimes", "get_zone", "parse_expression"]

ALIASES = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
FIELDS_HINT = ("5 fields (minute hour day-of-month month day-of-week), or 6 with seconds as "
               "the last field, e.g. '0 9 * * 1-5' or '*/10 * * * * 30'")
#: (name, first value, last value) of each field, in croniter's order: seconds last.
FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day-of-month", 1, 31), ("month", 1, 12),
          ("day-of-week", 0, 6), ("second", 0, 59))
_STEP = re.compile(r"/(\d+)$")


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
    _check_steps(expanded.split(), expression, where)
    try:
        croniter(expanded, datetime(2000, 1, 1)).get_next(datetime)
    except CroniterBadDateError:
        raise ValueError(f"{where}: cron expression {expression!r} never fires") from None
    except (CroniterBadCronError, ValueError, KeyError) as exc:
        raise ValueError(f"{where}: invalid cron expression {expression!r}: {exc}; use "
                         f"{FIELDS_HINT}") from None
    return text


def _check_steps(fields: list[str], expression: str, where: str) -> None:
    """Refuse a step (``*/n``, ``a-b/n``) outside 1..the number of values in its field.

    croniter takes ``*/61 * * * *`` and fires it hourly: a step counts within its field and
    starts again each hour (day, month…), so cron cannot say "every 61 minutes". A step equal
    to the field's size fires once per period, at the field's first value, and is allowed."""
    for (name, first, last), field in zip(FIELDS, fields, strict=False):
        size = last - first + 1
        for part in field.split(","):
            match = _STEP.search(part)
            if match and not 1 <= int(match.group(1)) <= size:
                raise ValueError(
                    f"{where}: invalid cron expression {expression!r}: {name} step "
                    f"/{match.group(1)} is out of range; a {name} step must be from 1 to "
                    f"{size} (the field has {size} values, {first}-{last}): a longer interval "
                    "cannot be one cron expression")


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
