"""Fire times of cron expressions in a time zone, across daylight-saving transitions.

The clock is injected: ``seen`` steps a fake "now" through a night the way the scheduler's
passes do (each pass takes the latest tick at or before now, once), so these tests check what
the scheduler would enqueue, and an independent oracle checks the mapping of wall-clock matches
to instants."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter

from django_edgejobs.crontimes import CronTimes, get_zone, parse_expression

NY = "America/New_York"
LORD_HOWE = "Australia/Lord_Howe"  # a 30-minute daylight-saving shift


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def seen(times: CronTimes, start: datetime, end: datetime, step: timedelta) -> list[datetime]:
    """The ticks a scheduler polling every ``step`` from ``start`` to ``end`` would fire."""
    fired: list[datetime] = []
    now = start
    while now <= end:
        tick = times.prev(now)
        if tick is not None and tick >= start and (not fired or tick > fired[-1]):
            fired.append(tick)
        now += step
    return fired


def local_day(times: CronTimes, day: datetime) -> list[datetime]:
    """Every fire time whose local date is ``day`` (a naive date at midnight)."""
    zone = times.zone
    start = day.replace(tzinfo=zone) - timedelta(microseconds=1)
    out = []
    fire = times.next(start)
    while fire.astimezone(zone).date() == day.date():
        out.append(fire)
        fire = times.next(fire)
    return out


# -- New York -------------------------------------------------------------------------------

def test_repeated_local_time_fires_once_in_new_york_fall_back():
    times = CronTimes.parse("30 1 * * *", NY)
    # 2026-11-01: 01:00-02:00 happens twice (EDT, then EST). Poll every 30 s through the night.
    fired = seen(times, utc(2026, 11, 1, 3), utc(2026, 11, 1, 9), timedelta(seconds=30))
    assert fired == [utc(2026, 11, 1, 5, 30)]  # 01:30 EDT, the first occurrence
    assert fired[0].astimezone(ZoneInfo(NY)).strftime("%H:%M %Z") == "01:30 EDT"
    assert [f.astimezone(UTC) for f in local_day(times, datetime(2026, 11, 1))] == fired


def test_skipped_local_time_fires_once_at_the_end_of_the_gap_in_new_york_spring_forward():
    times = CronTimes.parse("30 2 * * *", NY)
    # 2026-03-08: 02:00-03:00 does not exist; 02:30 fires once, at 03:00 EDT.
    fired = seen(times, utc(2026, 3, 8, 4), utc(2026, 3, 8, 10), timedelta(seconds=30))
    assert fired == [utc(2026, 3, 8, 7)]
    assert fired[0].astimezone(ZoneInfo(NY)).strftime("%H:%M %Z") == "03:00 EDT"
    # The next days are normal again.
    assert times.next(fired[0]) == datetime(2026, 3, 9, 2, 30, tzinfo=ZoneInfo(NY))


def test_several_skipped_times_collapse_into_one_fire():
    times = CronTimes.parse("*/15 2 * * *", NY)  # 02:00, 02:15, 02:30, 02:45: all skipped
    assert [f.astimezone(UTC) for f in local_day(times, datetime(2026, 3, 8))] == [
        utc(2026, 3, 8, 7)]
    assert len(local_day(times, datetime(2026, 3, 9))) == 4


def test_hourly_schedule_across_fall_back_fires_each_local_hour_once():
    times = CronTimes.parse("0 * * * *", NY)
    fired = seen(times, utc(2026, 11, 1, 3, 30), utc(2026, 11, 1, 9, 30), timedelta(minutes=1))
    local = [f.astimezone(ZoneInfo(NY)).strftime("%H:%M %Z") for f in fired]
    # 01:00 EST (06:00 UTC) is the repeat of 01:00 EDT: not fired again.
    assert local == ["00:00 EDT", "01:00 EDT", "02:00 EST", "03:00 EST", "04:00 EST"]
    assert utc(2026, 11, 1, 6) not in fired
    day = local_day(times, datetime(2026, 11, 1))
    assert [f.astimezone(ZoneInfo(NY)).hour for f in day] == list(range(24))


def test_hourly_schedule_across_spring_forward_loses_nothing_but_the_missing_hour():
    times = CronTimes.parse("0 * * * *", NY)
    day = local_day(times, datetime(2026, 3, 8))
    hours = [f.astimezone(ZoneInfo(NY)).hour for f in day]
    # Wall hour 2 does not exist: it fires at 03:00, the same instant as hour 3 (once).
    assert hours == [0, 1, *range(3, 24)]


def test_a_time_in_the_second_pass_of_the_repeated_hour_looks_forward_correctly():
    times = CronTimes.parse("*/15 * * * *", NY)
    second_pass = utc(2026, 11, 1, 6, 20)  # 01:20 EST: 01:30 EDT already happened
    assert times.next(second_pass) == utc(2026, 11, 1, 7)  # 02:00 EST
    assert times.prev(second_pass) == utc(2026, 11, 1, 5, 45)  # 01:45 EDT
    first_pass = utc(2026, 11, 1, 5, 20)  # 01:20 EDT
    assert times.next(first_pass) == utc(2026, 11, 1, 5, 30)
    assert times.prev(first_pass) == utc(2026, 11, 1, 5, 15)


# -- Lord Howe: 30-minute shifts ------------------------------------------------------------

def test_lord_howe_fall_back_repeats_half_an_hour_and_fires_once():
    times = CronTimes.parse("45 1 * * *", LORD_HOWE)
    # 2026-04-05 02:00 +11:00 -> 01:30 +10:30: 01:30-02:00 happens twice.
    fired = seen(times, utc(2026, 4, 4, 13), utc(2026, 4, 4, 17), timedelta(seconds=30))
    assert fired == [utc(2026, 4, 4, 14, 45)]  # 01:45 +11:00
    every_ten = CronTimes.parse("*/10 * * * *", LORD_HOWE)
    day = local_day(every_ten, datetime(2026, 4, 5))
    walls = [f.astimezone(ZoneInfo(LORD_HOWE)).strftime("%H:%M") for f in day]
    assert len(walls) == len(set(walls)) == 24 * 6


def test_lord_howe_spring_forward_skips_half_an_hour_and_fires_at_its_end():
    times = CronTimes.parse("15 2 * * *", LORD_HOWE)
    # 2026-10-04 02:00 +10:30 -> 02:30 +11:00: 02:15 does not exist.
    fired = seen(times, utc(2026, 10, 3, 13), utc(2026, 10, 3, 18), timedelta(seconds=30))
    assert fired == [utc(2026, 10, 3, 15, 30)]
    assert fired[0].astimezone(ZoneInfo(LORD_HOWE)).strftime("%H:%M%z") == "02:30+1100"


# -- seconds, strict order, an independent oracle -------------------------------------------

def test_six_fields_have_seconds_last():
    times = CronTimes.parse("0 12 * * * 30", "UTC")
    assert times.next(utc(2026, 1, 1)) == utc(2026, 1, 1, 12, 0, 30)
    every_15s = CronTimes.parse("* * * * * */15", "UTC")
    assert every_15s.upcoming(utc(2026, 1, 1, 0, 0, 1), 4) == [
        utc(2026, 1, 1, 0, 0, 15), utc(2026, 1, 1, 0, 0, 30), utc(2026, 1, 1, 0, 0, 45),
        utc(2026, 1, 1, 0, 1, 0)]
    every_second = CronTimes.parse("* * * * * *", NY)
    assert every_second.prev(utc(2026, 1, 1, 0, 0, 7, 500000)) == utc(2026, 1, 1, 0, 0, 7)
    assert every_second.prev(utc(2026, 1, 1, 0, 0, 7)) == utc(2026, 1, 1, 0, 0, 7)
    assert every_second.next(utc(2026, 1, 1, 0, 0, 7)) == utc(2026, 1, 1, 0, 0, 8)


def test_every_second_across_fall_back_never_repeats_an_instant_or_a_wall_time():
    times = CronTimes.parse("* * * * * *", NY)
    fired = times.upcoming(utc(2026, 11, 1, 5, 59, 50), 30)
    assert all(b > a for a, b in pairwise(fired))
    # 01:59:59 EDT is followed by 02:00:00 EST: the repeated hour is not fired again.
    assert utc(2026, 11, 1, 6) not in fired and utc(2026, 11, 1, 7) in fired


@pytest.mark.parametrize("zone", ["UTC", NY, LORD_HOWE, "Europe/London", "Asia/Kolkata"])
@pytest.mark.parametrize("expression", ["*/7 * * * *", "30 1,2 * * *", "0 */3 * * 1-5",
                                        "59 23 L * *", "0 0 29 2 *", "15 2 * * 0 45"])
def test_fire_times_strictly_increase_and_agree_with_prev(expression, zone):
    times = CronTimes.parse(expression, zone)
    after = utc(2026, 1, 1)
    fired = times.upcoming(after, 300 if "29 2" not in expression else 3)
    assert all(b > a for a, b in pairwise([after, *fired]))
    for fire in fired[:60]:
        assert times.prev(fire) == fire
        assert times.prev(fire - timedelta(microseconds=1)) < fire
        assert times.next(times.prev(fire - timedelta(microseconds=1))) == fire


def oracle(expression: str, zone: ZoneInfo, start: datetime, end: datetime) -> list[datetime]:
    """Fire instants by brute force over UTC minutes: a wall-clock match fires at the first
    instant that shows it, or (never shown: skipped) at the first instant after it."""
    shown: dict[datetime, datetime] = {}
    instant = start
    instants = []
    while instant < end:
        shown.setdefault(instant.astimezone(zone).replace(tzinfo=None), instant)
        instants.append(instant)
        instant += timedelta(minutes=1)
    walls = sorted(shown)
    fires = set()
    wall = walls[0]
    while wall <= walls[-1]:
        if croniter.match(expression, wall):
            fires.add(shown.get(wall) or next(i for i in instants
                                              if i.astimezone(zone).replace(tzinfo=None) > wall))
        wall += timedelta(minutes=1)
    return sorted(fires)


@pytest.mark.parametrize(("zone", "start"), [(NY, utc(2026, 3, 8, 4)), (NY, utc(2026, 11, 1, 3)),
                                             (LORD_HOWE, utc(2026, 4, 4, 12)),
                                             (LORD_HOWE, utc(2026, 10, 3, 13))])
@pytest.mark.parametrize("expression", ["*/10 * * * *", "5,35 1-3 * * *", "0 * * * *"])
def test_transition_nights_match_a_brute_force_oracle(expression, zone, start):
    times = CronTimes.parse(expression, zone)
    end = start + timedelta(hours=6)
    expected = oracle(expression, ZoneInfo(zone), start, end)
    got = []
    fire = times.next(start - timedelta(microseconds=1))
    while fire < end:
        got.append(fire)
        fire = times.next(fire)
    assert got == expected


# -- parsing --------------------------------------------------------------------------------

@pytest.mark.parametrize(("expression", "problem"), [
    ("* * * *", "it has 4 field(s)"),
    ("* * * * * * *", "it has 7 field(s)"),
    ("61 * * * *", "invalid cron expression '61 * * * *'"),
    ("0 0 30 2 *", "never fires"),
    ("", "non-empty string"),
    (None, "non-empty string"),
    ("every day", "field(s)"),
])
def test_bad_expressions_name_the_problem(expression, problem):
    with pytest.raises(ValueError) as exc:
        parse_expression(expression, where="add_cron('x')")
    if "field" in problem:
        assert "or 6 with seconds as the last field" in str(exc.value)
    assert problem in str(exc.value) and str(exc.value).startswith("add_cron('x'): ")


def test_aliases_and_whitespace():
    assert parse_expression("  0   9 * *   1-5 ") == "0 9 * * 1-5"
    assert CronTimes.parse("@hourly").next(utc(2026, 1, 1, 0, 30)) == utc(2026, 1, 1, 1)
    assert CronTimes.parse("@daily", NY).next(utc(2026, 1, 1, 12)) == utc(2026, 1, 2, 5)


def test_unknown_zone_is_a_value_error_with_a_suggestion():
    with pytest.raises(ValueError, match=r"unknown time zone 'America/New_Yrok'.*"
                                         r"did you mean 'America/New_York'"):
        get_zone("America/New_Yrok", where="add_cron('x')")
    for bad in ("", None, "../etc/passwd", "Mars/Olympus"):
        with pytest.raises(ValueError, match="unknown time zone"):
            get_zone(bad)


def test_description_in_words():
    assert CronTimes.parse("0 9 * * 1-5", NY).describe() == (
        "At 09:00, Monday through Friday (America/New_York)")
    assert CronTimes.parse("* * * * * */10").describe() == "Every 10 seconds (UTC)"


# -- steps: at most the number of values in the field ---------------------------------------

@pytest.mark.parametrize(("expression", "field", "step", "size", "values"), [
    ("*/61 * * * *", "minute", 61, 60, "0-59"),
    ("*/90 * * * *", "minute", 90, 60, "0-59"),
    ("5/61 * * * *", "minute", 61, 60, "0-59"),
    ("0,10-20/61 * * * *", "minute", 61, 60, "0-59"),
    ("*/0 * * * *", "minute", 0, 60, "0-59"),
    ("0 */25 * * *", "hour", 25, 24, "0-23"),
    ("0 0 */32 * *", "day-of-month", 32, 31, "1-31"),
    ("0 0 1 */13 *", "month", 13, 12, "1-12"),
    ("0 0 * * */8", "day-of-week", 8, 7, "0-6"),
    ("0 0 * * 1-5/9", "day-of-week", 9, 7, "0-6"),
    ("* * * * * */61", "second", 61, 60, "0-59"),
])
def test_a_step_larger_than_its_field_is_refused(expression, field, step, size, values):
    # croniter takes '*/61 * * * *' and fires it hourly (cron-descriptor: "Every 61 minutes").
    with pytest.raises(ValueError) as exc:
        parse_expression(expression, where="add_cron('x')")
    message = str(exc.value)
    assert message.startswith(f"add_cron('x'): invalid cron expression {expression!r}: ")
    assert f"{field} step /{step} is out of range" in message
    assert f"a {field} step must be from 1 to {size} (the field has {size} values, {values})" \
        in message


@pytest.mark.parametrize(("expression", "after", "fires"), [
    # A step equal to the field's size fires once per period, at the field's first value.
    ("*/60 * * * *", utc(2026, 1, 1, 0, 30), [utc(2026, 1, 1, 1), utc(2026, 1, 1, 2)]),
    ("* * * * * */60", utc(2026, 1, 1, 0, 0, 30), [utc(2026, 1, 1, 0, 1), utc(2026, 1, 1, 0, 2)]),
    ("0 */24 * * *", utc(2026, 1, 1, 1), [utc(2026, 1, 2), utc(2026, 1, 3)]),
    ("0 0 */31 * *", utc(2026, 1, 1, 1), [utc(2026, 2, 1), utc(2026, 3, 1)]),
    ("0 0 1 */12 *", utc(2026, 1, 1, 1), [utc(2027, 1, 1), utc(2028, 1, 1)]),
    ("0 0 * * */7", utc(2026, 1, 1), [utc(2026, 1, 4), utc(2026, 1, 11)]),  # Sundays
    ("10-20/60 * * * *", utc(2026, 1, 1), [utc(2026, 1, 1, 0, 10), utc(2026, 1, 1, 1, 10)]),
])
def test_a_step_up_to_the_fields_size_is_accepted(expression, after, fires):
    assert CronTimes.parse(expression).upcoming(after, 2) == fires
