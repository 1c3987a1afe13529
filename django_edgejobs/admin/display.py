"""How the admin shows stored values: redacted, pretty, truncated. Pure functions, no HTML.

Templates escape what these return; nothing here marks text safe.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from ..redaction import MASK as MASK  # re-exported: the admin's names since round one
from ..redaction import is_secret as is_secret
from ..redaction import redact as redact
from ..redaction import redact_keys as redact_keys
from ..redaction import shorten_strings

#: A string value longer than this is cut inside the JSON tree.
MAX_STRING = 2_000
#: The pretty text of one value (payload, result, steps...) is cut past this.
MAX_TEXT = 20_000
#: Tracebacks keep their end (where the error is), up to this many characters.
MAX_TRACEBACK = 10_000

def truncate(text: str, limit: int = MAX_TEXT) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n… ({len(text) - limit:,} more characters not shown)"


def truncate_start(text: str, limit: int = MAX_TRACEBACK) -> str:
    """Keep the end of ``text`` (a traceback's last lines name the error)."""
    if len(text) <= limit:
        return text
    return f"… ({len(text) - limit:,} earlier characters not shown)\n{text[-limit:]}"


def pretty_json(value: Any, *, limit: int = MAX_TEXT, string_limit: int = MAX_STRING,
                keys: Iterable[str] | None = None) -> str:
    """Indented JSON of ``value`` with secrets masked and long values cut."""
    safe = shorten_strings(redact(value, keys), string_limit)
    text = json.dumps(safe, indent=2, ensure_ascii=False, sort_keys=False, default=str)
    return truncate(text, limit)


def short_json(value: Any, limit: int = 120) -> str:
    """One line of JSON for lists, secrets masked."""
    text = json.dumps(redact(value), ensure_ascii=False, default=str, separators=(",", ":"))
    return text if len(text) <= limit else text[:limit - 1] + "…"


def human_duration(delta: timedelta | float | None) -> str:
    """'850 ms', '12.3 s', '4 min 5 s', '2 h 10 min', '3 d 4 h'."""
    if delta is None:
        return "—"
    seconds = delta.total_seconds() if isinstance(delta, timedelta) else float(delta)
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    if seconds < 1:
        return f"{sign}{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{sign}{seconds:.1f} s"
    minutes, sec = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{sign}{minutes} min {sec} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{sign}{hours} h {minutes} min"
    days, hours = divmod(hours, 24)
    return f"{sign}{days} d {hours} h"


def age(then: datetime | None, now: datetime) -> str:
    return "—" if then is None else human_duration(now - then)


#: ``when`` for templates (Django's ``date`` filter): to the second, with the time zone.
WHEN_FORMAT = "Y-m-d H:i:s T"


def when(value: datetime | str | None) -> str:
    """A moment in the current time zone, to the second, named: '2026-05-01 09:00:03 UTC'.
    An ISO 8601 string (an error history's ``at``) is read first; other text is shown as is."""
    from django.utils import timezone
    from django.utils.dateparse import parse_datetime

    if isinstance(value, str):
        parsed = parse_datetime(value)
        if parsed is None:
            return value
        value = parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed)
    return "—" if value is None else timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S %Z")
