"""Enqueue: validate everything, then write in one round trip inside the caller's transaction."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from contextlib import nullcontext
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from asgiref.sync import sync_to_async
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.models.base import ModelState
from django.db.models.signals import post_init, pre_init
from django.utils import timezone

from .. import signals, telemetry
from ..conf import get_settings
from ..exceptions import InvalidPayload, UnknownJobType
from ..fingerprints import error_group
from ..models import Job
from ..models.clock import Now
from ..models.job import DEPENDENCIES, JobStatus
from ..models.transitions import REJECT
from ..registry import ON_INVALID, get_registry
from ..store import get_store
from ..store.core import append_error
from . import dependencies
from . import validation as v
from .limits import Limits, check_limits, merge, row_values

logger = logging.getLogger("django_edgejobs")
WAITING = JobStatus.WAITING

#: Keys an ``enqueue_many`` item may carry besides type and payload.
OPTION_KEYS = frozenset({
    "delay", "run_at", "priority", "queue", "max_attempts", "max_retries", "retry_delay",
    "retry_backoff", "retry_delay_max", "timeout", "tags", "idempotency_key", "expires",
    "concurrency_key", "concurrency_limit", "rate_limit", "rate_key", "on_invalid",
    "retry_multiplier", "depends_on", "on_dependency_failure",
})
#: The options that are each job's own, never part of a shared spec: its dependencies.
DEPENDENCY_KEYS = frozenset({"depends_on", "on_dependency_failure"})


def build_job(type: str, payload: Any = None, *, where: str = "enqueue", **options: Any):
    """Validate one job's input and return an unsaved Job. Raises before anything is written."""
    unknown = set(options) - OPTION_KEYS
    if unknown:
        raise TypeError(f"{where}: unexpected option(s) {', '.join(sorted(unknown))}")
    return _Builder().build(type, payload, where, options)


#: Option values of these exact types are compared by value to reuse a validated spec
#: (``type`` is part of the key: ``True`` and ``1`` are equal but only one is a priority).
_PLAIN = frozenset({str, int, float, bool, type(None), datetime, timedelta})


class _Spec(NamedTuple):
    """What a job's type and options decide, validated: every field but the payload and the
    ones each job gets fresh (its id, empty steps...), plus the transient attributes."""

    job_type: Any
    values: dict[str, Any]
    fresh: tuple[tuple[str, Any], ...]  # (field, default factory)
    limits: Any  # services.limits.Limits: resolved per payload
    on_invalid: str  # registry.ON_INVALID: a payload the schema refuses


class _Builder:
    """Builds validated Jobs, all stamped with one ``now``.

    ``enqueue_many`` uses one for the whole call: items of the same type with equal plain
    options (the usual bulk load) share one validated spec, so the per-item work is the
    payload, an id and a copy of a dict."""

    def __init__(self) -> None:
        self.conf = get_settings()
        self.now = timezone.now()
        self._specs: dict[tuple[Any, ...], _Spec] = {}
        #: ``enqueue_many``: how many items the call has (``depends_on`` may name them by
        #: position); None: a single enqueue.
        self.indexes: int | None = None
        self.plain = not (pre_init.has_listeners(Job) or post_init.has_listeners(Job))

    def build(self, type: str, payload: Any, where: str, options: Mapping[str, Any]):
        deps = None
        if not DEPENDENCY_KEYS.isdisjoint(options):
            deps = dependencies.check(options.get("depends_on"),
                                      options.get("on_dependency_failure"),
                                      where=f"{where}({type!r})", indexes=self.indexes)
            options = {k: val for k, val in options.items() if k not in DEPENDENCY_KEYS}
        job = self._build(type, payload, where, options)
        # A payload the schema refused (on_invalid="fail") fails now: it waits for nothing.
        if job is not None and deps is not None and deps[0] and not getattr(job, "refused",
                                                                            None):
            job.depends_on_refs, job.on_dependency_failure = deps
            job.status, job.wait_token = WAITING, DEPENDENCIES
        return job

    def _build(self, type: str, payload: Any, where: str, options: Mapping[str, Any]):
        # Every option but the idempotency key (usually one per item) decides the spec.
        shared = [(k, val.__class__, val) for k, val in options.items() if k != "idempotency_key"]
        key = None
        if type.__class__ is str and all(cls in _PLAIN for _, cls, _ in shared):
            key = (type, *shared)
        spec = self._specs.get(key) if key is not None else None
        if spec is None:
            spec = self._spec(type, options, where)
            if key is not None:
                self._specs[key] = spec
        where = f"{where}({type!r})"
        schema = spec.job_type.payload_schema
        refused = None
        if schema is not None:
            try:
                payload = schema.dump(payload, where=where)
            except InvalidPayload as exc:
                if spec.on_invalid == "raise":
                    raise
                if spec.on_invalid == "discard":
                    logger.warning("payload discarded (on_invalid='discard'): %s", exc)
                    return None
                refused = exc  # "fail": stored as given, then failed with this error
        if (payload is None or (payload.__class__ is dict and not payload)) \
                and self.conf.MAX_PAYLOAD_BYTES >= 2:
            payload_text, payload = "{}", {}
        else:
            try:
                payload_text = v.encode_payload({} if payload is None else payload,
                                                max_bytes=self.conf.MAX_PAYLOAD_BYTES,
                                                where=where)
            except InvalidPayload as exc:
                if refused is None:
                    raise
                raise InvalidPayload(f"{refused}; and on_invalid='fail' cannot keep it as a "
                                     f"failed job: {exc}") from None
            payload = json.loads(payload_text)
        values = spec.values.copy()
        values["payload"] = payload
        # The payload as JSON text, so the store does not encode it a second time.
        values["payload_json"] = payload_text
        values["tags"] = values["tags"].copy()
        if "idempotency_key" in options:
            values["idempotency_key"] = v.validate_idempotency_key(options["idempotency_key"],
                                                                   where=where)
        for name, factory in spec.fresh:
            values[name] = factory()
        if spec.limits:
            values.update(row_values(spec.limits, type, payload, where=where))
        if refused is not None:
            values["refused"] = f"{InvalidPayload.__name__}: {refused}"  # transient
        return _new_job(values, self.plain)

    def _spec(self, type: str, options: Mapping[str, Any], where: str) -> _Spec:
        conf = self.conf
        try:
            job_type = get_registry().require(type)
        except UnknownJobType as exc:  # say which call (and which item of enqueue_many)
            raise UnknownJobType(f"{where}: {exc}") from None
        where = f"{where}({type!r})"
        v.validate_type(type, where=where)
        opts = v.validate_options(
            {k: options.get(k) for k in ("queue", "priority", "retry_delay", "retry_backoff",
                                         "retry_multiplier", "retry_delay_max", "timeout")},
            where=where,
        )
        attempts = v.resolve_attempts(options.get("max_attempts"), options.get("max_retries"),
                                      where=where)
        now = self.now
        run_at = v.resolve_run_at(options.get("delay"), options.get("run_at"), now, where=where)
        expires_at, expires_in = v.resolve_expires(options.get("expires"), run_at, now,
                                                   where=where)
        tags = v.validate_tags(options.get("tags"), where=where)
        defaults = job_type.defaults()
        limits = merge(job_type.limits or Limits(), check_limits(options, where=where),
                       where=where)
        on_invalid = options.get("on_invalid")
        if on_invalid is None:
            on_invalid = job_type.on_invalid
        elif on_invalid not in ON_INVALID:
            raise ValueError(f"{where}: on_invalid must be one of "
                             f"{', '.join(map(repr, ON_INVALID))}, got {on_invalid!r}")
        elif on_invalid != "raise" and job_type.payload_schema is None:
            raise ValueError(f"{where}: on_invalid={on_invalid!r} needs a payload schema, and "
                             f"job type {type!r} has none (@job(..., schema=...))")

        def pick(name: str, fallback: Any) -> Any:
            for value in (opts.get(name), defaults.get(name)):
                if value is not None:
                    return value
            return fallback

        values, fresh = _with_defaults({
            "type": type,
            "queue": pick("queue", "default"),
            "priority": pick("priority", 0),
            "run_at": run_at,
            "expires_at": expires_at,
            "max_attempts": attempts or defaults["max_attempts"] or conf.DEFAULT_MAX_ATTEMPTS,
            "retry_delay": pick("retry_delay", conf.DEFAULT_RETRY_DELAY),
            **v.resolve_backoff([(opts.get("retry_backoff"), opts.get("retry_multiplier")),
                                 (defaults["retry_backoff"], defaults["retry_multiplier"])],
                                conf.DEFAULT_RETRY_BACKOFF),
            "retry_delay_max": pick("retry_delay_max", conf.DEFAULT_RETRY_DELAY_MAX),
            "timeout": pick("timeout", None),
            "tags": tags,
            "idempotency_key": None,  # each job's own
            "created_at": now,
            "updated_at": now,
            # Seconds from now, counted on the database's clock when the row is written (None
            # when the caller gave an absolute run_at).
            "enqueue_delay": (run_at - now).total_seconds() if options.get("run_at") is None
            else None,
            # Likewise for an expiry given in seconds.
            "enqueue_expires": expires_in,
            "payload": None,  # each job's own
        })
        return _Spec(job_type, values, fresh, limits, on_invalid)


#: Job's concrete fields: (attname, default, fresh); fresh defaults (uuid4, dict, list, now)
#: are called for each job, the others are constants.
_FIELDS: list[tuple[str, Any, bool]] | None = None


def _fields() -> list[tuple[str, Any, bool]]:
    global _FIELDS
    if _FIELDS is None:
        _FIELDS = [(f.attname, f.default, True) if f.has_default() and callable(f.default)
                   else (f.attname, f.get_default(), False)  # immutable: 0, "", "pending", None
                   for f in Job._meta.concrete_fields]
    return _FIELDS


def _with_defaults(values: dict[str, Any]) -> tuple[dict[str, Any], tuple[tuple[str, Any], ...]]:
    """``values`` completed with the constant defaults of the fields it lacks, and the
    fields still lacking with their default factories (to call for each job)."""
    out = dict(values)
    fresh = []
    for name, default, is_factory in _fields():
        if name not in out:
            if is_factory:
                fresh.append((name, default))
            else:
                out[name] = default
    return out, tuple(fresh)


def _new_job(values: dict[str, Any], plain: bool):
    """An unsaved Job from ``values``: every concrete field, plus transient attributes.
    ``plain``: no receiver listens to Job's ``pre_init`` or ``post_init``.

    Django's keyword path in ``Model.__init__`` costs about as much as the rest of enqueue
    together; its positional path is the one reproduced below."""
    if not plain:
        # positional: one argument per concrete field, then the transient attributes
        job = Job(*[values.pop(name) for name, _, _ in _fields()])  # type: ignore[misc]
        job.__dict__.update(values)
        return job
    # What Model.__init__ does with positional arguments when no receiver listens to its
    # signals (Job's fields are plain attributes), in about 60% of the time.
    job = Job.__new__(Job)
    job._state = ModelState()
    job.__dict__.update(values)
    return job


def enqueue(type: str, payload: Any = None, **options: Any):
    """Add one job; see ``enqueue_many`` for the guarantees. None when the schema refused the
    payload and ``on_invalid`` is ``"discard"``."""
    built = build_job(type, payload, **options)
    return None if built is None else _write([built])[0]


async def aenqueue(type: str, payload: Any = None, **options: Any):
    """``enqueue`` for async code: the type, payload and options are checked and the job built
    in the calling coroutine (bad input raises there, before any thread hop); the write is one
    hop to Django's sync thread, where the database connection lives, as the async ORM does."""
    built = build_job(type, payload, where="aenqueue", **options)
    if built is None:
        return None
    return (await sync_to_async(_write, thread_sensitive=True)([built]))[0]


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
    if job is None:  # on_invalid="discard"
        return None
    job.payload_json = None  # written later: encode the payload as it is then
    transaction.on_commit(lambda: _write([job]), using=alias)
    return job


def enqueue_many(items: Iterable[Mapping[str, Any]]) -> list:
    """Add many jobs in one round trip, all or none; returns them in input order.

    Each item is ``{"type": ..., "payload": ..., **options}`` with the options of ``enqueue``.
    An item whose payload the schema refused with ``on_invalid="discard"`` is None.
    """
    jobs = enqueue_many_items(_Builder(), items)
    if None not in jobs:
        return _write(jobs)
    written = iter(_write([j for j in jobs if j is not None]))
    return [None if j is None else next(written) for j in jobs]


def check_item(item: Mapping[str, Any], where: str) -> None:
    """An item of ``enqueue_many`` (or a batch's callback) has a type, and nothing but a
    payload and ``enqueue`` options besides; else ``ValueError`` naming ``where``."""
    if "type" not in item:
        raise ValueError(f"{where} has no 'type'")
    extra = set(item) - OPTION_KEYS - {"type", "payload"}
    if extra:
        raise ValueError(f"{where} has unknown key(s) {', '.join(sorted(map(str, extra)))}")


def enqueue_many_items(builder: _Builder, items: Iterable[Mapping[str, Any]],
                       where: str = "enqueue_many") -> list:
    """The jobs of ``enqueue_many`` items, built and checked (nothing written); ``depends_on``
    positions resolved to the jobs of those items."""
    jobs = []
    items = list(items)
    builder.indexes = len(items)
    for index, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise ValueError(f"{where}: item {index} must be a dict, got {type(item).__name__}")
        check_item(item, f"{where}: item {index}")
        options = {k: val for k, val in item.items() if k not in ("type", "payload")}
        jobs.append(builder.build(item["type"], item.get("payload"), f"{where} item {index}",
                                  options))
    dependencies.resolve_positions(jobs, where=where)
    builder.indexes = None
    return jobs


def _write(jobs: list) -> list:
    store = get_store()
    limited = {j.queue for j in jobs if j.concurrency_limit is not None
               or j.rate_limit is not None}
    refused = [j for j in jobs if getattr(j, "refused", None)]
    waiting = [j for j in jobs if getattr(j, "depends_on_refs", None)]
    if waiting:  # unknown ids raise here, before anything is written
        dependencies.check_known(store.alias, waiting, jobs)
    with telemetry.producing(jobs) if telemetry.active() else nullcontext():
        if limited or refused or waiting:
            with transaction.atomic(using=store.alias):
                if limited:  # the workers of these queues must also run the limited claim
                    store.mark_limited(sorted(limited))
                written = store.insert(jobs)
                if refused:
                    written = _reject(written, jobs)
                if waiting:  # after the rejects: a job waiting for one is settled at once
                    dependencies.link(store, written, jobs)
        else:
            written = store.insert(jobs)
    if signals.job_enqueued.has_listeners():
        fresh = [j for j, built in zip(written, jobs, strict=True)
                 if j is built and not getattr(j, "refused", None)]

        def send() -> None:
            for job in fresh:
                signals.job_enqueued.send(sender=job.__class__, job=job)

        transaction.on_commit(send, using=store.alias)
    return written


def _reject(written: list, jobs: list) -> list:
    """``on_invalid="fail"``: the jobs just inserted whose payload the schema refused go
    straight to ``failed`` with the validation error, in the enqueue's transaction (no worker
    ever sees them pending); ``job_failed`` is sent after commit, ``job_enqueued`` is not. A
    job found by its idempotency key instead is left as it is. Returns ``written`` with the
    rejected jobs as stored."""
    from .lifecycle import _after_commit, _change

    alias = get_store().alias
    rejected = {}
    for job, built in zip(written, jobs, strict=True):
        error = getattr(built, "refused", None)
        if error and job is built:
            history = append_error(None, 0, error, "")
            if _change([job.id], REJECT, {"last_error": error, "error_history": history,
                                          "error_group": error_group(error, history),
                                          "completed_at": Now()}, {"error": error}):
                rejected[job.id] = error
    if not rejected:
        return written
    for job_id, error in rejected.items():
        _after_commit(signals.job_failed, [job_id], error=error)
    stored = Job.objects.using(alias).in_bulk(list(rejected))
    return [stored[j.id] if j.id in rejected else j for j in written]
