"""Enqueue: validate everything, then write in one round trip inside the caller's transaction."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.models.base import ModelState
from django.db.models.signals import post_init, pre_init
from django.utils import timezone

from .. import signals
from ..conf import get_settings
from ..exceptions import UnknownJobType
from ..registry import get_registry
from . import validation as v

#: Keys an ``enqueue_many`` item may carry besides type and payload.
OPTION_KEYS = frozenset({
    "delay", "run_at", "priority", "queue", "max_attempts", "max_retries", "retry_delay",
    "retry_backoff", "retry_delay_max", "timeout", "tags", "idempotency_key", "expires",
})


def build_job(type: str, payload: Any = None, *, where: str = "enqueue", **options: Any):
    """Validate one job's input and return an unsaved Job. Raises before anything is written."""
    unknown = set(options) - OPTION_KEYS
    if unknown:
        raise TypeError(f"{where}: unexpected option(s) {', '.join(sorted(unknown))}")
    conf = get_settings()
    try:
        job_type = get_registry().require(type)
    except UnknownJobType as exc:  # say which call (and which item of enqueue_many)
        raise UnknownJobType(f"{where}: {exc}") from None
    where = f"{where}({type!r})"
    v.validate_type(type, where=where)
    if job_type.payload_schema is not None:
        payload = job_type.payload_schema.dump(payload, where=where)
    payload_text = v.encode_payload({} if payload is None else payload,
                                    max_bytes=conf.MAX_PAYLOAD_BYTES, where=where)
    opts = v.validate_options(
        {k: options.get(k) for k in ("queue", "priority", "retry_delay", "retry_backoff",
                                     "retry_delay_max", "timeout")},
        where=where,
    )
    attempts = v.resolve_attempts(options.get("max_attempts"), options.get("max_retries"),
                                  where=where)
    now = timezone.now()
    run_at = v.resolve_run_at(options.get("delay"), options.get("run_at"), now, where=where)
    expires_at, expires_in = v.resolve_expires(options.get("expires"), run_at, now, where=where)
    tags = v.validate_tags(options.get("tags"), where=where)
    key = v.validate_idempotency_key(options.get("idempotency_key"), where=where)
    defaults = job_type.defaults()

    def pick(name: str, fallback: Any) -> Any:
        for value in (opts.get(name), defaults.get(name)):
            if value is not None:
                return value
        return fallback

    job = _new_job(
        type=type,
        queue=pick("queue", "default"),
        payload=json.loads(payload_text),
        priority=pick("priority", 0),
        run_at=run_at,
        expires_at=expires_at,
        max_attempts=attempts or defaults["max_attempts"] or conf.DEFAULT_MAX_ATTEMPTS,
        retry_delay=pick("retry_delay", conf.DEFAULT_RETRY_DELAY),
        retry_backoff=pick("retry_backoff", conf.DEFAULT_RETRY_BACKOFF),
        retry_delay_max=pick("retry_delay_max", conf.DEFAULT_RETRY_DELAY_MAX),
        timeout=pick("timeout", None),
        tags=tags,
        idempotency_key=key,
        created_at=now,
        updated_at=now,
    )
    # The payload as JSON text, so the store does not encode it a second time.
    job.payload_json = payload_text
    # Seconds from now, counted on the database's clock when the row is written (None when
    # the caller gave an absolute run_at).
    job.enqueue_delay = (run_at - now).total_seconds() if options.get("run_at") is None else None
    # Likewise for an expiry given in seconds.
    job.enqueue_expires = expires_in
    return job


_FIELDS: list[tuple[str, Any]] | None = None
_NAMES: list[str] = []


def _new_job(**values: Any):
    """An unsaved Job from these field values and the model's defaults for the rest.

    Django's keyword path in ``Model.__init__`` costs about as much as the rest of enqueue
    together; its positional path is the one reproduced below."""
    global _FIELDS, _NAMES
    from ..models import Job

    if _FIELDS is None:
        _FIELDS = []
        for f in Job._meta.concrete_fields:
            if f.has_default() and callable(f.default):
                _FIELDS.append((f.attname, f.default))  # dict, list, uuid4, now: fresh each
            else:
                constant = f.get_default()  # immutable: 0, "", "pending", None
                _FIELDS.append((f.attname, lambda value=constant: value))
        _NAMES = [name for name, _ in _FIELDS]
    args = [values[name] if name in values else default() for name, default in _FIELDS]
    if pre_init.has_listeners(Job) or post_init.has_listeners(Job):
        return Job(*args)  # type: ignore[misc]  # positional: one argument per concrete field
    # What Model.__init__ does with positional arguments when no receiver listens to its
    # signals (Job's fields are plain attributes), in about 60% of the time.
    job = Job.__new__(Job)
    job._state = ModelState()
    job.__dict__.update(zip(_NAMES, args, strict=True))
    return job


def enqueue(type: str, payload: Any = None, **options: Any):
    """Add one job; see ``enqueue_many`` for the guarantees."""
    return _write([build_job(type, payload, **options)])[0]


def enqueue_on_commit(type: str, payload: Any = None, *, using: str | None = None,
                      **options: Any):
    """Add one job once the transaction open on database ``using`` commits; nothing if it
    rolls back.

    For jobs that must exist only if an outer transaction on *another* database commits
    (``enqueue`` already joins the transaction of the jobs' own database). Everything is
    validated now, so bad input raises here, not at commit. Outside a transaction the job
    is written at once. A ``delay`` counts from the moment the row is written.

    Returns the job as it will be written (unsaved until then): its ``id`` is the id of the
    row to come, unless an ``idempotency_key`` finds an existing job, which is then kept.
    """
    alias = DEFAULT_DB_ALIAS if using is None else using
    if not isinstance(alias, str) or alias not in connections:
        raise ValueError(f"enqueue_on_commit: using={alias!r} is not a database alias "
                         f"(one of {', '.join(sorted(connections))})")
    job = build_job(type, payload, where="enqueue_on_commit", **options)
    job.payload_json = None  # written later: encode the payload as it is then
    transaction.on_commit(lambda: _write([job]), using=alias)
    return job


def enqueue_many(items: Iterable[Mapping[str, Any]]) -> list:
    """Add many jobs in one round trip, all or none; returns them in input order.

    Each item is ``{"type": ..., "payload": ..., **options}`` with the options of ``enqueue``.
    """
    jobs = []
    for index, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise ValueError(
                f"enqueue_many: item {index} must be a dict, got {type(item).__name__}")
        if "type" not in item:
            raise ValueError(f"enqueue_many: item {index} has no 'type'")
        extra = set(item) - OPTION_KEYS - {"type", "payload"}
        if extra:
            raise ValueError(f"enqueue_many: item {index} has unknown key(s) "
                             f"{', '.join(sorted(map(str, extra)))}")
        options = {k: val for k, val in item.items() if k not in ("type", "payload")}
        jobs.append(build_job(item["type"], item.get("payload"),
                              where=f"enqueue_many item {index}", **options))
    return _write(jobs)


def _write(jobs: list) -> list:
    from ..store import get_store

    store = get_store()
    written = store.insert(jobs)
    if signals.job_enqueued.has_listeners():
        fresh = [j for j, built in zip(written, jobs, strict=True) if j is built]

        def send() -> None:
            for job in fresh:
                signals.job_enqueued.send(sender=job.__class__, job=job)

        transaction.on_commit(send, using=store.alias)
    return written
