"""Every cron expression the docs show means what the docs say it means.

``DOCUMENTED`` maps each expression that appears in README.md, docs/**/*.md and the hints of
the cron error messages to what the text around it claims, written as fire times: the
package's own ``CronTimes`` computes the next ones from fixed instants, and they must be the
ones listed. ``REFUSED`` holds the expressions the docs show as invalid.

A scan finds every cron-looking string in backticks or quotes. It fails on one that neither
table covers, so a new example cannot go in unchecked, and on a table entry the docs no longer
contain, so the table cannot rot. ``PITFALLS`` are expressions that look like something they
are not; the docs must never show them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from django_edgejobs import checks
from django_edgejobs.crontimes import ALIASES, FIELDS_HINT, CronTimes, parse_expression

ROOT = Path(__file__).resolve().parents[2]
NY, PARIS = "America/New_York", "Europe/Paris"

#: The fixed start: a Thursday, ten seconds before a new minute, hour, day, month and year.
START = datetime(2026, 12, 31, 23, 59, 50, tzinfo=UTC)
SPRING_NIGHT = datetime(2026, 3, 8, 4, tzinfo=UTC)  # 23:00 EST, before New York springs forward
FALL_NIGHT = datetime(2026, 11, 1, 3, tzinfo=UTC)  # 23:00 EDT, before New York falls back


@dataclass(frozen=True)
class Case:
    """From ``after``, the next fire times in ``zone`` are ``fires`` (local wall clock)."""

    zone: str
    fires: tuple[str, ...]
    after: datetime = START


#: expression -> (what the docs say, the fire times that says, in one or more cases).
DOCUMENTED: dict[str, tuple[str, tuple[Case, ...]]] = {
    "0 9 * * 1-5": ("At 09:00, Monday through Friday", (
        Case(NY, ("2027-01-01 Fri 09:00:00 EST", "2027-01-04 Mon 09:00:00 EST",
                  "2027-01-05 Tue 09:00:00 EST")),
    )),
    "* * * * * */30": ("Every 30 seconds", (
        Case("UTC", ("2027-01-01 Fri 00:00:00 UTC", "2027-01-01 Fri 00:00:30 UTC",
                     "2027-01-01 Fri 00:01:00 UTC", "2027-01-01 Fri 00:01:30 UTC")),
    )),
    "* * * * * */10": ("Every 10 seconds", (
        Case("UTC", ("2027-01-01 Fri 00:00:00 UTC", "2027-01-01 Fri 00:00:10 UTC",
                     "2027-01-01 Fri 00:00:20 UTC", "2027-01-01 Fri 00:00:30 UTC")),
    )),
    "0 9 * * 1-5 30": ("At 09:00:30, Monday through Friday", (
        Case("UTC", ("2027-01-01 Fri 09:00:30 UTC", "2027-01-04 Mon 09:00:30 UTC")),
    )),
    "*/10 * * * * 30": ("At 30 seconds past the minute, every 10 minutes", (  # FIELDS_HINT
        Case("UTC", ("2027-01-01 Fri 00:00:30 UTC", "2027-01-01 Fri 00:10:30 UTC",
                     "2027-01-01 Fri 00:20:30 UTC")),
    )),
    "30 2 * * *": ("At 02:30", (
        Case(PARIS, ("2027-01-01 Fri 02:30:00 CET", "2027-01-02 Sat 02:30:00 CET")),
        # explanation/cron.md: skipped on the spring-forward night, so it fires at 03:00 EDT,
        # "and the next day at 02:30 again".
        Case(NY, ("2026-03-08 Sun 03:00:00 EDT", "2026-03-09 Mon 02:30:00 EDT"),
             SPRING_NIGHT),
    )),
    "45 2 * * *": ("At 02:45", (
        Case(PARIS, ("2027-01-01 Fri 02:45:00 CET", "2027-01-02 Sat 02:45:00 CET")),
    )),
    "*/15 2 * * *": ("Every 15 minutes, between 02:00 and 02:59", (
        # "they collapse into that one fire at 03:00"; the next night is normal.
        Case(NY, ("2026-03-08 Sun 03:00:00 EDT", "2026-03-09 Mon 02:00:00 EDT",
                  "2026-03-09 Mon 02:15:00 EDT", "2026-03-09 Mon 02:30:00 EDT"), SPRING_NIGHT),
    )),
    "30 1 * * *": ("At 01:30", (
        # "fires at 01:30 EDT and not again at 01:30 EST" (the repeated hour).
        Case(NY, ("2026-11-01 Sun 01:30:00 EDT", "2026-11-02 Mon 01:30:00 EST"), FALL_NIGHT),
    )),
    "0 * * * *": ("Every hour", (
        # "fires at 00:00 EDT, 01:00 EDT, 02:00 EST…"
        Case(NY, ("2026-11-01 Sun 00:00:00 EDT", "2026-11-01 Sun 01:00:00 EDT",
                  "2026-11-01 Sun 02:00:00 EST", "2026-11-01 Sun 03:00:00 EST"), FALL_NIGHT),
    )),
    # "Every 90 minutes takes two schedules": together 00:00, 01:30, 03:00, 04:30...
    "0 */3 * * *": ("Every 3 hours", (
        Case("UTC", ("2027-01-01 Fri 00:00:00 UTC", "2027-01-01 Fri 03:00:00 UTC",
                     "2027-01-01 Fri 06:00:00 UTC")),
    )),
    "30 1-22/3 * * *": ("At 30 minutes past the hour, every 3 hours, between 01:00 and 22:59", (
        Case("UTC", ("2027-01-01 Fri 01:30:00 UTC", "2027-01-01 Fri 04:30:00 UTC",
                     "2027-01-01 Fri 07:30:00 UTC")),
        Case("UTC", ("2027-01-01 Fri 22:30:00 UTC", "2027-01-02 Sat 01:30:00 UTC"),
             datetime(2027, 1, 1, 20, tzinfo=UTC)),
    )),
    "@hourly": ("Every hour", (
        Case("UTC", ("2027-01-01 Fri 00:00:00 UTC", "2027-01-01 Fri 01:00:00 UTC")),
    )),
    "@daily": ("At 00:00", (
        Case("UTC", ("2027-01-01 Fri 00:00:00 UTC", "2027-01-02 Sat 00:00:00 UTC")),
    )),
    "@midnight": ("At 00:00", (
        Case("UTC", ("2027-01-01 Fri 00:00:00 UTC", "2027-01-02 Sat 00:00:00 UTC")),
    )),
    "@weekly": ("At 00:00, only on Sunday", (
        Case("UTC", ("2027-01-03 Sun 00:00:00 UTC", "2027-01-10 Sun 00:00:00 UTC")),
    )),
    "@monthly": ("At 00:00, on day 1 of the month", (
        Case("UTC", ("2027-01-01 Fri 00:00:00 UTC", "2027-02-01 Mon 00:00:00 UTC",
                     "2027-03-01 Mon 00:00:00 UTC")),
    )),
    "@yearly": ("At 00:00, on day 1 of the month, only in January", (
        Case("UTC", ("2027-01-01 Fri 00:00:00 UTC", "2028-01-01 Sat 00:00:00 UTC")),
    )),
    "@annually": ("At 00:00, on day 1 of the month, only in January", (
        Case("UTC", ("2027-01-01 Fri 00:00:00 UTC", "2028-01-01 Sat 00:00:00 UTC")),
    )),
}

#: Expressions the docs show as refused -> a part of the error they must raise.
REFUSED: dict[str, str] = {
    "61 * * * *": "invalid cron expression '61 * * * *'",
    "*/61 * * * *": "minute step /61",
    "*/90 * * * *": "minute step /90",
}

#: Expressions that read as something else -> what they really do. Never in the docs.
PITFALLS: dict[str, str] = {
    # Seconds are the LAST field: this is "every second of minutes :00 and :30".
    "*/30 * * * * *": "every 30 seconds is '* * * * * */30'",
}

_FIELD = re.compile(r"[0-9*?/,#LW-]+|[A-Za-z]{3}(?:-[A-Za-z]{3})?")
_QUOTED = (re.compile(r"`([^`\n]+)`"), re.compile(r'"([^"\n]+)"'), re.compile(r"'([^'\n]+)'"))


def looks_like_cron(text: str) -> bool:
    text = text.strip()
    if text.lower() in ALIASES:
        return True
    fields = text.split()
    return (len(fields) in (5, 6) and all(_FIELD.fullmatch(f) for f in fields)
            and sum(bool(re.search(r"[0-9*]", f)) for f in fields) >= 3)


def sources() -> dict[str, str]:
    """Where users read cron expressions: the docs, and the hints of the error messages."""
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    out = {str(p.relative_to(ROOT)): p.read_text(encoding="utf-8") for p in docs}
    out["crontimes.FIELDS_HINT"] = FIELDS_HINT
    out["checks._CRON_HINT"] = checks._CRON_HINT
    return out


def found_in_docs() -> dict[str, list[str]]:
    """Every cron-looking string in backticks or quotes -> where it appears (file:line)."""
    found: dict[str, list[str]] = {}
    for name, text in sources().items():
        for number, line in enumerate(text.splitlines(), 1):
            for pattern in _QUOTED:
                for match in pattern.finditer(line):
                    if looks_like_cron(match.group(1)):
                        expression = " ".join(match.group(1).split())
                        found.setdefault(expression, []).append(f"{name}:{number}")
    return found


def local(fire: datetime, zone: str) -> str:
    return fire.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %a %H:%M:%S %Z")


def test_the_scan_finds_the_known_examples():
    found = found_in_docs()
    assert "0 9 * * 1-5" in found and "@hourly" in found and "30 1 * * *" in found
    assert not looks_like_cron("@job") and not looks_like_cron("the day is not a cron")


def test_every_expression_in_the_docs_is_covered():
    found = found_in_docs()
    pitfalls = {e: f"{where}: {PITFALLS[e]}" for e, where in found.items() if e in PITFALLS}
    assert not pitfalls, f"misleading cron expressions in the docs: {pitfalls}"
    unknown = {e: where for e, where in found.items() if e not in DOCUMENTED | REFUSED}
    assert not unknown, ("add these documented expressions, with the fire times the docs "
                         f"claim, to DOCUMENTED (or REFUSED) in {__file__}: {unknown}")
    stale = sorted((set(DOCUMENTED) | set(REFUSED)) - set(found))
    assert not stale, f"no longer in the docs; remove from the tables: {stale}"


@pytest.mark.parametrize("expression", sorted(DOCUMENTED))
def test_each_documented_expression_fires_when_the_docs_say(expression):
    words, cases = DOCUMENTED[expression]
    for case in cases:
        times = CronTimes.parse(expression, case.zone)
        assert times.describe() == f"{words} ({case.zone})"
        fires = times.upcoming(case.after, len(case.fires))
        assert [local(f, case.zone) for f in fires] == list(case.fires), (expression, case)


@pytest.mark.parametrize("expression", sorted(REFUSED))
def test_each_expression_the_docs_show_as_refused_is_refused(expression):
    with pytest.raises(ValueError, match=re.escape(REFUSED[expression])):
        parse_expression(expression)


def test_the_pitfall_really_is_one():
    # '*/30 * * * * *' fires every second of minutes :00 and :30, not every 30 seconds.
    fires = CronTimes.parse("*/30 * * * * *").upcoming(START, 3)
    assert [local(f, "UTC") for f in fires] == [
        "2027-01-01 Fri 00:00:00 UTC", "2027-01-01 Fri 00:00:01 UTC", "2027-01-01 Fri 00:00:02 UTC"]
