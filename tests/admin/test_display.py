"""Pure helpers: redaction, pretty JSON, truncation, durations, charts, percentiles."""

from __future__ import annotations

from datetime import timedelta

import pytest

from django_edgejobs.admin import charts, display
from django_edgejobs.admin.stats import percentile

KEYS = ("password", "token", "secret", "authorization", "apikey")


def test_redact_masks_secret_keys_at_any_depth_ignoring_case_and_punctuation():
    value = {"user": "ann", "Password": "p", "nested": {"API-Key": "k", "list": [
        {"access_token": "t", "ok": 1}, "plain"]}, "X-Authorization": {"deep": "v"},
        "client_secret": ["a"]}
    assert display.redact(value, KEYS) == {
        "user": "ann", "Password": display.MASK,
        "nested": {"API-Key": display.MASK, "list": [
            {"access_token": display.MASK, "ok": 1}, "plain"]},
        "X-Authorization": display.MASK, "client_secret": display.MASK}
    assert value["Password"] == "p"  # a copy: the stored value is untouched


def test_redact_reads_the_setting(settings):
    settings.EDGEJOBS = {"REDACT_KEYS": ["ssn"]}
    assert display.redact({"SSN": "1", "password": "x"}) == {"SSN": display.MASK,
                                                            "password": "x"}


def test_pretty_json_cuts_long_strings_and_long_texts():
    text = display.pretty_json({"a": "x" * 50, "b": list(range(2000))}, string_limit=10,
                               limit=200, keys=KEYS)
    assert '"xxxxxxxxxx… (40 more characters)"' in text
    assert text.endswith("more characters not shown)")
    assert len(text) < 300


def test_truncate_start_keeps_the_end_of_a_traceback():
    tb = "line\n" * 1000 + "ValueError: the end"
    out = display.truncate_start(tb, 100)
    assert out.endswith("ValueError: the end") and out.startswith("… (")
    assert display.truncate_start("short", 100) == "short"


@pytest.mark.parametrize(("seconds", "text"), [
    (0.25, "250 ms"), (3.21, "3.2 s"), (65, "1 min 5 s"), (7300, "2 h 1 min"),
    (3 * 86400 + 3600, "3 d 1 h"), (None, "—")])
def test_human_duration(seconds, text):
    assert display.human_duration(seconds) == text
    if seconds is not None:
        assert display.human_duration(timedelta(seconds=seconds)) == text


def test_stacked_bars_draw_one_rect_per_non_zero_value_and_escape_text():
    svg = charts.stacked_bars(
        ["<a>", "b", "c"],
        [charts.Series("ok<script>", "#0f0", [1, 0, 3]), charts.Series("bad", "#f00", [2, 0, 0])],
        title="T <img onerror=x>")
    assert svg.startswith("<svg") and svg.count("<rect") == 3
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert "<img" not in svg and "&lt;a&gt;" in svg


def test_lines_break_at_missing_values():
    svg = charts.lines(["a", "b", "c", "d"], [charts.Series("p50", "#00f", [1, None, 2, 3])],
                       title="t", unit="s")
    assert svg.count("<polyline") == 1  # a, then a gap, then c-d
    assert svg.count("<circle") == 3


def test_empty_charts_still_draw_an_axis():
    svg = charts.stacked_bars([], [], title="empty")
    assert "<svg" in svg and "<rect" not in svg


@pytest.mark.parametrize(("value", "top"), [(0, 1), (0.3, 0.5), (7, 10), (12, 20), (150, 200),
                                            (500, 500)])
def test_nice_max(value, top):
    assert charts.nice_max(value) == top


def test_percentile_is_nearest_rank():
    assert percentile([], 50) is None
    assert percentile([3, 1, 2], 50) == 2
    assert percentile(list(range(1, 101)), 95) == 95
    assert percentile([5], 95) == 5


def test_when_shows_the_second_and_names_the_time_zone(settings):
    from datetime import UTC, datetime

    from django.utils import timezone

    moment = datetime(2026, 5, 1, 7, 0, 3, 900_000, tzinfo=UTC)
    assert display.when(moment) == "2026-05-01 07:00:03 UTC"
    assert display.when(None) == "—"
    # An error history's ISO 8601 text reads the same; other text is shown as is.
    assert display.when("2026-05-01T07:00:03.9+00:00") == "2026-05-01 07:00:03 UTC"
    assert display.when("yesterday") == "yesterday"
    settings.TIME_ZONE = "Europe/Berlin"
    with timezone.override("Europe/Berlin"):
        assert display.when(moment) == "2026-05-01 09:00:03 CEST"
