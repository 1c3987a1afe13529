"""Change lists that stay fast on tables of millions of rows.

- ``CappedPaginator`` counts at most ``cap + 1`` rows (``COUNT(*)`` over a ``LIMIT``), so a
  page never scans the whole table to say how many pages there are.
- ``date_hierarchy`` replaces Django's tag of the same name, whose month view runs a
  ``SELECT DISTINCT`` day truncation over every row of the month: here a list of at most
  ``SMALL`` rows reads its dates in one query, and a longer one offers the days (months,
  years) that have any job, each found by one seek of the unfiltered index (at most 32).
"""

from __future__ import annotations

import datetime as dt

from django.contrib.admin.templatetags.admin_list import date_hierarchy as django_hierarchy
from django.core.paginator import Paginator
from django.utils import formats, timezone
from django.utils.functional import cached_property
from django.utils.text import capfirst
from django.utils.translation import gettext as _


class CappedPaginator(Paginator):
    cap = 10_000

    @cached_property
    def count(self) -> int:
        object_list = self.object_list
        if hasattr(object_list, "order_by"):
            return object_list.order_by()[: self.cap + 1].count()
        return len(object_list)  # pragma: no cover - lists are not used here

    @property
    def capped(self) -> bool:
        return self.count > self.cap


#: Lists of at most this many rows read their dates instead of seeking them (SQLite's
#: Django date functions are Python calls per row, so no ``SELECT DISTINCT`` of a day).
SMALL = 3000


def _start(year: int, month: int = 1, day: int = 1) -> dt.datetime:
    return timezone.make_aware(dt.datetime(year, month, day))


def _next_month(year: int, month: int) -> tuple[int, int]:
    return (year + 1, 1) if month == 12 else (year, month + 1)


def _level(local: dt.datetime, level: str):
    return local.year if level == "year" else local.month if level == "month" else local.date()


class _Dates:
    """Distinct years, months or days (local time) with rows. A short list (at most ``SMALL``
    rows) reads its own dates once. A long one offers the dates of the whole table (its
    filters are not applied to the dates): found with a loose index scan, one ``ORDER BY ...
    LIMIT 1`` seek per value plus one, each instant on the unfiltered index. With a filter,
    such a seek would skip every non-matching row on its way, which a planner cannot foresee
    when the matches sit at one end of the index (e.g. overdue jobs are all recent)."""

    def __init__(self, qs, root, field_name: str, small: bool):
        self.field = field_name
        self.qs = qs if small else root.order_by()
        self.values: list[dt.datetime] | None = None
        if small:
            self.values = sorted(timezone.localtime(v) for v in qs.values_list(
                field_name, flat=True).iterator(chunk_size=2000) if v is not None)

    def bounds(self) -> tuple[dt.datetime | None, dt.datetime | None]:
        if self.values is not None:
            return (self.values[0], self.values[-1]) if self.values else (None, None)
        rows = self.qs.values_list(self.field, flat=True)
        first = rows.order_by(self.field).first()
        last = rows.order_by(f"-{self.field}").first()
        if first is None or last is None:
            return None, None
        return timezone.localtime(first), timezone.localtime(last)

    def distinct(self, lo: dt.datetime, hi: dt.datetime, level: str) -> list:
        if self.values is not None:
            return sorted({_level(v, level) for v in self.values if lo <= v < hi})
        found: list = []
        cursor = lo
        while cursor < hi:
            first = (self.qs.filter(**{f"{self.field}__gte": cursor, f"{self.field}__lt": hi})
                     .order_by(self.field).values_list(self.field, flat=True).first())
            if first is None:
                break
            local = timezone.localtime(first)
            found.append(_level(local, level))
            if level == "year":
                cursor = _start(local.year + 1)
            elif level == "month":
                cursor = _start(*_next_month(local.year, local.month))
            else:
                cursor = timezone.make_aware(
                    dt.datetime.combine(local.date() + dt.timedelta(days=1), dt.time()))
        return found


def date_hierarchy(cl):
    """Django's ``date_hierarchy`` context, computed with bounded index seeks."""
    field_name = cl.date_hierarchy
    if not field_name:
        return {}
    qs = cl.queryset.order_by()
    params = cl.params
    year_field, month_field, day_field = (f"{field_name}__{p}" for p in ("year", "month", "day"))
    year, month, day = (params.get(f) for f in (year_field, month_field, day_field))
    if year and month and day:
        return django_hierarchy(cl)  # one day: no query at all

    def link(filters):
        return cl.get_query_string(filters, [f"{field_name}__"])

    field_verbose_name = cl.model._meta.get_field(field_name).verbose_name
    try:
        year = int(year) if year else None
        month = int(month) if month else None
        if year is not None:
            _start(year, month or 1)
    except (TypeError, ValueError, OverflowError):
        return {}  # the changelist itself reports the bad parameter
    # (Each probe's range already confines it to the year or month drilled into.)
    dates = _Dates(qs, cl.root_queryset, field_name,
                   0 <= getattr(cl, "result_count", -1) <= SMALL)
    if year is None:
        first, last = dates.bounds()
        if first is None or last is None:
            return {"show": True, "choices": [], "field_name": field_verbose_name}
        if first.year != last.year:
            years = dates.distinct(_start(first.year), _start(last.year + 1), "year")
            return {
                "show": True,
                "choices": [{"link": link({year_field: y}), "title": str(y)} for y in years],
                "field_name": field_verbose_name,
            }
        year = first.year
        if first.month == last.month:
            month = first.month
    if month:
        days = dates.distinct(_start(year, month), _start(*_next_month(year, month)), "day")
        return {
            "show": True,
            "back": {"link": link({year_field: year}), "title": str(year)},
            "choices": [
                {"link": link({year_field: year, month_field: month, day_field: d.day}),
                 "title": capfirst(formats.date_format(d, "MONTH_DAY_FORMAT"))}
                for d in days
            ],
            "field_name": field_verbose_name,
        }
    months = dates.distinct(_start(year), _start(year + 1), "month")
    return {
        "show": True,
        "back": {"link": link({}), "title": _("All dates")},
        "choices": [
            {"link": link({year_field: year, month_field: m}),
             "title": capfirst(formats.date_format(dt.date(year, m, 1), "YEAR_MONTH_FORMAT"))}
            for m in months
        ],
        "field_name": field_verbose_name,
    }
