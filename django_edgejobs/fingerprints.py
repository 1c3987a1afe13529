"""Failure fingerprints: a stored failure's exception class and its message with the numbers
and ids taken out, hashed to 12 hex characters. The worker stores one with each failure
(``Job.error_group``), and ``services/failures.py`` groups by it. Pure functions, no Django.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

#: How much of a normalised message makes a group (longer messages share a group when their
#: first this many characters agree).
MESSAGE_CHARS = 200

_UUID = re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                   r"[0-9a-fA-F]{12}\b")
_HEX = re.compile(r"\b(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{8,}\b")
_NUMBER = re.compile(r"(?<![A-Za-z_])[-+]?\d+(?:[.,:]\d+)*")


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


def error_group(last_error: str, error_history: Any) -> str:
    """The fingerprint of a stored failure (``Job.error_group``)."""
    return fingerprint(*describe_failure(last_error, error_history))
