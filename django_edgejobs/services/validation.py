"""Pure checks of user input. Everything raises before anything is written."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from ..exceptions import InvalidPayload
from ..retry import BACKOFF_MODES, backoff_mode

MAX_QUEUE_LENGTH = 100
MAX_TYPE_LENGTH = 200
MAX_KEY_LENGTH = 255
MAX_TAG_LENGTH = 200
#: Largest value of the 32-bit integer columns (priority, max_attempts).
MAX_INT = 2**31 - 1
#: Largest ``metadata`` of a cron schedule, as JSON: it is shown, not a data store.
MAX_METADATA_BYTES = 16_384
#: Deeper payloads are refused (the checks and the JSON codecs recurse once per level).
MAX_PAYLOAD_DEPTH = 500

_NUL = "which PostgreSQL cannot store"
_SURROGATE = "which UTF-8 cannot encode (e.g. os.fsdecode of a non-UTF-8 file name)"


def lone_surrogate(text: str) -> str | None:
    """The first lone surrogate (U+D800 to U+DFFF) in ``text`` as ``'\\udcff'``, or None.
    Python strings may hold one; UTF-8, and so every database, cannot."""
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"\\u{ord(text[exc.start]):04x}"
    return None


def _text(name: str, value: str, *, where: str) -> str:
    """A name-like string (queue, tag, key) the database can store: no NUL, no surrogate."""
    if "\x00" in value:
        raise ValueError(f"{where}: {name} cannot contain a NUL character: {value!r}")
    bad = lone_surrogate(value)
    if bad:
        raise ValueError(f"{where}: {name} contains a lone surrogate {bad}, {_SURROGATE}: "
                         f"{value!r}")
    return value


def _number(name: str, value: Any, *, where: str, minimum: float = 0,
            strict: bool = False) -> float:
    if isinstance(value, timedelta):
        value = value.total_seconds()
    try:
        finite = not isinstance(value, bool) and math.isfinite(value)
    except (TypeError, OverflowError):  # not a number, or an int too large for a float
        finite = False
    if not finite or not isinstance(value, int | float):
        raise ValueError(f"{where}: {name} must be a number of seconds, got {value!r}")
    if value < minimum or (strict and value == minimum):
        op = ">" if strict else ">="
        raise ValueError(f"{where}: {name} must be {op} {minimum:g}, got {value!r}")
    return float(value)


def _int(name: str, value: Any, *, where: str, minimum: int | None = None,
         maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{where}: {name} must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{where}: {name} must be >= {minimum}, got {value!r}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{where}: {name} must be <= {maximum}, got {value!r}")
    return value


def validate_type(name: Any, *, where: str) -> str:
    """A job type name that fits its column (registration is checked by the registry)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"{where}: job type must be a non-empty string, got {name!r}")
    if len(name) > MAX_TYPE_LENGTH:
        raise ValueError(f"{where}: job type is longer than {MAX_TYPE_LENGTH} characters")
    return _text("job type", name, where=where)


def validate_queue(queue: Any, *, where: str) -> str:
    if not isinstance(queue, str) or not queue.strip():
        raise ValueError(f"{where}: queue must be a non-empty string, got {queue!r}")
    if len(queue) > MAX_QUEUE_LENGTH:
        raise ValueError(f"{where}: queue name is longer than {MAX_QUEUE_LENGTH} characters")
    return _text("queue", queue, where=where)


def validate_tags(tags: Any, *, where: str) -> list[str]:
    if tags is None:
        return []
    if isinstance(tags, str | bytes) or not isinstance(tags, list | tuple | set | frozenset):
        raise ValueError(f"{where}: tags must be a list of strings, got {type(tags).__name__}")
    out: list[str] = []
    for tag in tags:
        if not isinstance(tag, str):
            raise ValueError(f"{where}: tags must be strings, got {tag!r} ({type(tag).__name__})")
        if not tag or len(tag) > MAX_TAG_LENGTH:
            raise ValueError(f"{where}: a tag must have 1 to {MAX_TAG_LENGTH} characters: {tag!r}")
        _text("a tag", tag, where=where)
        if tag not in out:
            out.append(tag)
    return out


def validate_options(options: dict[str, Any], *, where: str) -> dict[str, Any]:
    """Check job options (the ``@job`` / ``enqueue`` / ``edit_job`` ones); None means default."""
    out = dict(options)
    if out.get("queue") is not None:
        out["queue"] = validate_queue(out["queue"], where=where)
    if out.get("priority") is not None:
        out["priority"] = _int("priority", out["priority"], where=where)
        if not -(2**31) <= out["priority"] < 2**31:
            raise ValueError(f"{where}: priority must fit in 32 bits, got {out['priority']}")
    if out.get("max_attempts") is not None:
        out["max_attempts"] = _int("max_attempts", out["max_attempts"], where=where, minimum=1,
                                   maximum=MAX_INT)
    for name in ("retry_delay", "retry_delay_max"):
        if out.get(name) is not None:
            out[name] = _number(name, out[name], where=where)
    if out.get("retry_backoff") is not None:
        out["retry_backoff"] = validate_backoff(out["retry_backoff"], where=where)
    if out.get("retry_multiplier") is not None:
        out["retry_multiplier"] = validate_multiplier(out["retry_multiplier"], where=where)
        if out.get("retry_backoff") in (False, "fixed"):
            raise ValueError(f"{where}: retry_multiplier has no effect with "
                             f"retry_backoff={out['retry_backoff']!r} (a fixed delay); pass "
                             "retry_backoff='linear' or 'exponential' with it")
    if out.get("timeout") is not None:
        out["timeout"] = _number("timeout", out["timeout"], where=where, strict=True)
    return out


def validate_backoff(value: Any, *, where: str) -> bool | str:
    """A ``retry_backoff``: True, False, or one of ``BACKOFF_MODES`` (kept as given)."""
    if isinstance(value, bool) or (isinstance(value, str) and value in BACKOFF_MODES):
        return value
    raise ValueError(f"{where}: retry_backoff must be True, False, 'fixed', 'linear' or "
                     f"'exponential', got {value!r}")


def validate_multiplier(value: Any, *, where: str) -> float:
    """A ``retry_multiplier``: a finite number > 0."""
    try:
        finite = not isinstance(value, bool) and math.isfinite(value)
    except (TypeError, OverflowError):
        finite = False
    if not finite or not isinstance(value, int | float) or value <= 0:
        raise ValueError(f"{where}: retry_multiplier must be a number > 0, got {value!r}")
    return float(value)


def validate_metadata(value: Any, *, where: str) -> dict[str, Any]:
    """A schedule's ``metadata``: a JSON object (None: empty) of at most
    ``MAX_METADATA_BYTES`` as JSON; returned as JSON would give it back."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{where}: metadata must be a dict (a JSON object), got "
                         f"{type(value).__name__}")
    problem = _find_unserialisable(value, [])
    if problem:
        raise ValueError(f"{where}: " + problem.replace("payload", "metadata", 1))
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    size = len(text.encode("utf-8"))
    if size > MAX_METADATA_BYTES:
        raise ValueError(f"{where}: metadata is {size:,} bytes as JSON, over the limit of "
                         f"{MAX_METADATA_BYTES:,}")
    return dict(json.loads(text))


def resolve_attempts(max_attempts: Any, max_retries: Any, *, where: str) -> int | None:
    if max_attempts is not None and max_retries is not None:
        raise ValueError(f"{where}: pass max_attempts or max_retries, not both")
    if max_retries is not None:
        return _int("max_retries", max_retries, where=where, minimum=0,
                    maximum=MAX_INT - 1) + 1
    if max_attempts is not None:
        return _int("max_attempts", max_attempts, where=where, minimum=1, maximum=MAX_INT)
    return None


def resolve_backoff(levels: Sequence[tuple[Any, Any]], default: bool | str) -> dict[str, Any]:
    """A job's retry columns from its validated option ``levels``, most specific first
    (``enqueue``, then ``@job``), each ``(retry_backoff, retry_multiplier)`` with None for
    unset, and the settings' ``default`` backoff.

    The mode is the first one set. The multiplier is the first one set at that level or a
    more specific one: a level that sets a mode without a multiplier means that mode's own
    default (``retry_backoff=True`` is doubling, whatever ``@job`` multiplied by). A fixed
    delay keeps no multiplier."""
    multiplier = mode = None
    for backoff, level_multiplier in levels:
        if multiplier is None:
            multiplier = level_multiplier
        if backoff is not None:
            mode = backoff_mode(backoff)
            break
    if mode is None:
        mode = backoff_mode(default)
    return {"retry_backoff": mode != "fixed", "retry_mode": mode,
            "retry_multiplier": None if mode == "fixed" else multiplier}


def resolve_run_at(delay: Any, run_at: Any, now: datetime, *, where: str) -> datetime:
    if delay is not None and run_at is not None:
        raise ValueError(f"{where}: pass delay or run_at, not both")
    if run_at is not None:
        if not isinstance(run_at, datetime):
            raise ValueError(f"{where}: run_at must be a datetime, got {run_at!r}")
        if run_at.tzinfo is None or run_at.utcoffset() is None:
            raise ValueError(
                f"{where}: run_at must be timezone-aware, got naive {run_at.isoformat()} "
                "(use django.utils.timezone.now() or datetime(..., tzinfo=...))"
            )
        return run_at
    if delay is not None:
        seconds = _number("delay", delay, where=where)
        try:
            return now + timedelta(seconds=seconds)
        except OverflowError:
            raise ValueError(f"{where}: delay of {seconds:g} seconds is too large") from None
    return now


def resolve_expires(expires: Any, run_at: datetime, now: datetime, *,
                    where: str) -> tuple[datetime | None, float | None]:
    """When a job that has not started is cancelled instead: ``(moment, seconds)``.

    ``expires`` is seconds (or a timedelta) from now, or an aware datetime; ``seconds`` is
    None for a datetime. It must fall after the job's run time, or the job could never run.
    """
    if expires is None:
        return None, None
    seconds: float | None = None
    if isinstance(expires, datetime):
        if expires.tzinfo is None or expires.utcoffset() is None:
            raise ValueError(f"{where}: expires must be timezone-aware, got naive "
                             f"{expires.isoformat()}")
        at = expires
    else:
        seconds = _number("expires", expires, where=where, strict=True)
        try:
            at = now + timedelta(seconds=seconds)
        except OverflowError:
            raise ValueError(f"{where}: expires of {seconds:g} seconds is too large") from None
    if at <= run_at:
        raise ValueError(f"{where}: expires ({at.isoformat()}) is not after the job's run time "
                         f"({run_at.isoformat()}), so the job could never run")
    return at, seconds


def validate_idempotency_key(key: Any, *, where: str) -> str | None:
    if key is None:
        return None
    if not isinstance(key, str) or not key:
        raise ValueError(f"{where}: idempotency_key must be a non-empty string, got {key!r}")
    if len(key) > MAX_KEY_LENGTH:
        raise ValueError(f"{where}: idempotency_key is longer than {MAX_KEY_LENGTH} characters")
    return _text("idempotency_key", key, where=where)


def _path(parts: list[str | int]) -> str:
    out = "payload"
    for part in parts:
        out += f"[{part!r}]"
    return out


def _find_unserialisable(value: Any, parts: list[str | int],
                         active: set[int] | None = None) -> str | None:
    """A sentence naming the first part of ``value`` that JSON (or PostgreSQL) cannot hold."""
    if value is None or isinstance(value, bool | int):
        return None
    if isinstance(value, str):
        # json.dumps writes U+0000 as the escape \u0000, which PostgreSQL's jsonb refuses.
        if "\x00" in value:
            return f"{_path(parts)} contains a NUL character, {_NUL}"
        bad = lone_surrogate(value)
        return f"{_path(parts)} contains a lone surrogate {bad}, {_SURROGATE}" if bad else None
    if isinstance(value, float):
        if math.isfinite(value):
            return None
        return f"{_path(parts)} is {value!r}, which JSON cannot hold"
    if not isinstance(value, dict | list | tuple):
        return f"{_path(parts)} is a {type(value).__name__}, which is not JSON-serialisable"
    if len(parts) >= MAX_PAYLOAD_DEPTH:
        return f"payload is nested deeper than {MAX_PAYLOAD_DEPTH} levels"
    active = set() if active is None else active
    if id(value) in active:
        return f"{_path(parts)} refers to itself (a circular reference)"
    active.add(id(value))
    try:
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    return (
                        f"{_path(parts)} has a key {key!r} of type {type(key).__name__}; "
                        "JSON object keys must be strings"
                    )
                if "\x00" in key:
                    return f"{_path(parts)} has a key {key!r} with a NUL character, {_NUL}"
                bad = lone_surrogate(key)
                if bad:
                    return (f"{_path(parts)} has a key {key!r} with a lone surrogate {bad}, "
                            f"{_SURROGATE}")
                found = _find_unserialisable(item, [*parts, key], active)
                if found:
                    return found
            return None
        for index, item in enumerate(value):
            found = _find_unserialisable(item, [*parts, index], active)
            if found:
                return found
        return None
    finally:
        active.discard(id(value))


def encode_payload(payload: Any, *, max_bytes: int, where: str) -> str:
    """Return the payload as JSON text, or raise InvalidPayload naming the offending key."""
    problem = _find_unserialisable(payload, [])
    if problem:
        raise InvalidPayload(f"{where}: {problem}")
    text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    size = len(text.encode("utf-8"))
    if size > max_bytes:
        raise InvalidPayload(
            f"{where}: payload is {size:,} bytes as JSON, over MAX_PAYLOAD_BYTES ({max_bytes:,})"
        )
    return text


def check_result(result: Any, what: str = "the handler's return value") -> Any:
    """Make a handler's (or a step's) return value storable: JSON as is, or an error naming
    the problem."""
    problem = _find_unserialisable(result, [])
    if problem:
        raise InvalidPayload(f"{what}: " + problem.replace("payload", "result", 1))
    return result
