"""Flow-control options of a job: ``concurrency_key`` / ``concurrency_limit`` and
``rate_limit`` / ``rate_key``. Checked when ``@job`` registers (or ``enqueue`` is called) and
resolved against each job's payload at enqueue, so what is stored on the row is a plain key
and plain numbers; the claim (``store/limits.py``) enforces them.

A key is a ``str.format`` template over the payload (``"account:{account_id}"``) or a callable
``payload -> str``. Without a key, a concurrency limit holds for the job type as a whole
(key ``type:<name>``), and so does a rate limit."""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .validation import _text

#: The longest key the job row stores.
MAX_KEY_LENGTH = 255
PERIODS = {"s": 1.0, "m": 60.0, "h": 3600.0}
_RATE = re.compile(r"\s*(\d+)\s*/\s*(\d*(?:\.\d+)?)\s*([smh])\s*")

Key = str | Callable[[Any], str]


@dataclass(frozen=True)
class RateLimit:
    """At most ``n`` attempts start in any ``period`` seconds (a sliding window on the
    database's clock), across every worker. ``key``: a template or callable giving the key
    the limit is counted per (default: the job type)."""

    n: int
    period: float
    key: Key | None = None

    def __post_init__(self) -> None:
        if isinstance(self.n, bool) or not isinstance(self.n, int) or self.n < 1:
            raise ValueError(f"RateLimit: n must be an integer >= 1, got {self.n!r}")
        if (isinstance(self.period, bool) or not isinstance(self.period, int | float)
                or not self.period > 0 or self.period == float("inf")):
            raise ValueError(f"RateLimit: period must be a number of seconds > 0, "
                             f"got {self.period!r}")


def parse_rate(value: Any, *, where: str) -> RateLimit | None:
    """``"100/m"``, ``"5/s"``, ``"2/10m"`` (2 per 10 minutes), a ``RateLimit``, or None."""
    if value is None or isinstance(value, RateLimit):
        return value
    if isinstance(value, str):
        match = _RATE.fullmatch(value)
        if match:
            n, count, unit = match.groups()
            period = (float(count) if count else 1.0) * PERIODS[unit]
            if int(n) >= 1 and period > 0:
                return RateLimit(int(n), period)
    raise ValueError(f"{where}: rate_limit must be 'N/s', 'N/m', 'N/h' (N >= 1) or a "
                     f"RateLimit, got {value!r}")


def check_key(key: Any, name: str, *, where: str) -> Key | None:
    """A key template or callable, checked without a payload: a template must parse."""
    if key is None or callable(key):
        return key
    if not isinstance(key, str) or not key:
        raise ValueError(f"{where}: {name} must be a non-empty string template or a callable "
                         f"payload -> str, got {key!r}")
    try:
        list(string.Formatter().parse(key))
    except ValueError as exc:
        raise ValueError(f"{where}: {name} template {key!r} is not valid: {exc}") from None
    return key


def check_limit(limit: Any, *, where: str) -> int | None:
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"{where}: concurrency_limit must be an integer >= 1, got {limit!r}")
    if limit >= 2**31:
        raise ValueError(f"{where}: concurrency_limit must fit in 32 bits, got {limit}")
    return limit


def resolve_key(key: Key, payload: Any, name: str, *, where: str) -> str:
    """The key of one job: the template filled from its payload, or the callable's answer."""
    if callable(key):
        try:
            out = key(payload)
        except Exception as exc:
            raise ValueError(f"{where}: {name} callable raised {type(exc).__name__}: "
                             f"{exc}") from exc
    else:
        if not isinstance(payload, Mapping):
            raise ValueError(f"{where}: {name} template {key!r} needs a payload that is a "
                             f"dict, got {type(payload).__name__}")
        try:
            out = key.format_map(payload)
        except KeyError as exc:
            raise ValueError(f"{where}: {name} template {key!r} names payload key "
                             f"{exc.args[0]!r}, which the payload lacks") from None
        except (IndexError, ValueError, AttributeError, TypeError) as exc:
            raise ValueError(f"{where}: {name} template {key!r} cannot be filled from the "
                             f"payload: {exc}") from None
    if not isinstance(out, str) or not out:
        raise ValueError(f"{where}: {name} must resolve to a non-empty string, got {out!r}")
    if len(out) > MAX_KEY_LENGTH:
        raise ValueError(f"{where}: {name} {out[:40]!r}... is longer than {MAX_KEY_LENGTH} "
                         "characters")
    return _text(name, out, where=where)  # no NUL, no lone surrogate


@dataclass(frozen=True)
class Limits:
    """A job type's (or an enqueue's) flow-control options, checked."""

    concurrency_key: Key | None = None
    concurrency_limit: int | None = None
    rate: RateLimit | None = None
    rate_key: Key | None = None

    def __bool__(self) -> bool:
        return self.concurrency_limit is not None or self.rate is not None


def check_limits(options: Mapping[str, Any], *, where: str) -> Limits:
    """``concurrency_key``, ``concurrency_limit``, ``rate_limit``, ``rate_key`` of ``@job``
    or ``enqueue``; a key without its limit is an error (it would limit nothing)."""
    ckey = check_key(options.get("concurrency_key"), "concurrency_key", where=where)
    limit = check_limit(options.get("concurrency_limit"), where=where)
    rate = parse_rate(options.get("rate_limit"), where=where)
    rkey = check_key(options.get("rate_key"), "rate_key", where=where)
    if rate is not None and rate.key is not None:
        if rkey is not None:
            raise ValueError(f"{where}: give the rate key once: rate_key or RateLimit(key=)")
        rkey = check_key(rate.key, "rate_key", where=where)
    return Limits(ckey, limit, rate, rkey)


def limits_of(options: Mapping[str, Any], *, where: str) -> Limits:
    """The flow-control options of a declaration (``@job``, ``@task``), checked whole."""
    return merge(Limits(), check_limits(options, where=where), where=where)


def merge(job_type: Limits, given: Limits, *, where: str) -> Limits:
    """What an enqueue's own options override of its type's."""
    out = Limits(
        given.concurrency_key if given.concurrency_key is not None else job_type.concurrency_key,
        given.concurrency_limit if given.concurrency_limit is not None
        else job_type.concurrency_limit,
        given.rate if given.rate is not None else job_type.rate,
        given.rate_key if given.rate_key is not None else job_type.rate_key,
    )
    if out.concurrency_key is not None and out.concurrency_limit is None:
        raise ValueError(f"{where}: concurrency_key needs a concurrency_limit")
    if out.rate_key is not None and out.rate is None:
        raise ValueError(f"{where}: rate_key needs a rate_limit")
    return out


def row_values(limits: Limits, type_name: str, payload: Any, *, where: str) -> dict[str, Any]:
    """The job row's flow-control columns for one payload."""
    out: dict[str, Any] = {}
    if limits.concurrency_limit is not None:
        key = limits.concurrency_key
        out["concurrency_key"] = (resolve_key(key, payload, "concurrency_key", where=where)
                                  if key is not None else f"type:{type_name}")
        out["concurrency_limit"] = limits.concurrency_limit
    if limits.rate is not None:
        key = limits.rate_key
        out["rate_key"] = (resolve_key(key, payload, "rate_key", where=where)
                           if key is not None else f"type:{type_name}")
        out["rate_limit"] = limits.rate.n
        out["rate_period"] = float(limits.rate.period)
    return out
