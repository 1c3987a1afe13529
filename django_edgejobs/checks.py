"""System checks for the EDGEJOBS setting and the database it runs on."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

from . import crontimes
from .conf import MAX_CONCURRENCY, POOLER_MODES, EdgeJobsSettings, get_settings, unknown_keys
from .models import Job, JobStatus
from .registry import get_registry
from .services import schedules
from .store.pooler import behind_transaction_pooler


@register(Tags.compatibility)
def check_settings(app_configs: Any = None, **kwargs: Any) -> list:
    problems: list = []
    raw = getattr(settings, "EDGEJOBS", None)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        return [Error("EDGEJOBS must be a dict", hint="EDGEJOBS = {'QUEUES': ['default']}",
                      id="edgejobs.E001")]
    for key, close in unknown_keys(raw):
        problems.append(Error(
            f"EDGEJOBS has an unknown key {key!r}",
            hint=f"Did you mean {close!r}?" if close else "See the settings reference.",
            id="edgejobs.E002",
        ))
    if not getattr(settings, "USE_TZ", True):
        problems.append(Error(
            "django-edgejobs needs USE_TZ = True (job times are timezone-aware)",
            hint="Set USE_TZ = True in your settings.", id="edgejobs.E003",
        ))
    for name, value in raw.items():
        problem = _value_problem(name, value)
        if problem:
            code = "edgejobs.E004" if name in ("QUEUES", "REDACT_KEYS") else "edgejobs.E005"
            shown = "" if code == "edgejobs.E004" else f", got {value!r}"
            problems.append(Error(f"EDGEJOBS[{name!r}] {problem}{shown}",
                                  hint=_HINTS.get(name), id=code))
    hb, timeout = raw.get("HEARTBEAT_INTERVAL", 5.0), raw.get("WORKER_TIMEOUT", 30.0)
    if isinstance(hb, int | float) and isinstance(timeout, int | float) and timeout <= 2 * hb:
        problems.append(Warning(
            "EDGEJOBS['WORKER_TIMEOUT'] is not more than twice HEARTBEAT_INTERVAL: one late "
            "heartbeat would get a live worker's jobs reclaimed",
            hint="Keep WORKER_TIMEOUT at least 3x HEARTBEAT_INTERVAL.", id="edgejobs.W001",
        ))
    watchdog = raw.get("WATCHDOG_TIMEOUT", EdgeJobsSettings.WATCHDOG_TIMEOUT)
    statement = raw.get("STATEMENT_TIMEOUT", EdgeJobsSettings.STATEMENT_TIMEOUT)
    if _is_number(watchdog) and _is_number(statement) and 0 < watchdog <= statement:
        problems.append(Error(
            f"EDGEJOBS['WATCHDOG_TIMEOUT'] must be more than STATEMENT_TIMEOUT ({statement!r}): "
            "the watchdog would take a statement the server is still running for a dead "
            f"connection, got {watchdog!r}",
            hint="Leave a few seconds between them (defaults: 10 and 15), or set "
                 "WATCHDOG_TIMEOUT to 0 to turn the watchdog off.", id="edgejobs.E005",
        ))
    return problems


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


_POSITIVE_INT = ("CONCURRENCY", "MAX_PAYLOAD_BYTES", "DEFAULT_MAX_ATTEMPTS",
                 "TOKEN_CALLBACK_MAX_BYTES")
_NON_NEGATIVE_INT = ("BATCH_SIZE", "MAX_ERROR_HISTORY")
_POSITIVE_SECONDS = ("POLL_INTERVAL", "HEARTBEAT_INTERVAL", "WORKER_TIMEOUT",
                     "SUPERVISOR_INTERVAL", "PRUNE_INTERVAL")
_NON_NEGATIVE_NUMBER = ("SHUTDOWN_TIMEOUT", "DEFAULT_RETRY_DELAY", "DEFAULT_RETRY_DELAY_MAX",
                        "KEEP_FINISHED_DAYS", "KEEP_EVENTS_DAYS", "SQLITE_WATCH_INTERVAL",
                        "UNKNOWN_TYPE_GRACE", "STATEMENT_TIMEOUT", "LOCK_TIMEOUT",
                        "DEAD_CONNECTION_TIMEOUT", "WATCHDOG_TIMEOUT")
_HINTS = {
    "QUEUES": "For example ['default', 'emails'].",
    "DEFAULT_RETRY_BACKOFF": "True or False.",
    "PREPARED_STATEMENTS": "True or False.",
    "POOLER": "'auto' (the default: find out; a pooler found is taken for transaction "
              "pooling), 'none', 'session' or 'transaction'.",
    "LISTEN_DATABASE": "The alias of a PostgreSQL database in DATABASES: the jobs' database, "
                       "reached without the pooler.",
    "CONCURRENCY": f"An integer from 1 to {MAX_CONCURRENCY} (--concurrency has the same bound); "
                   "for more, run more worker processes.",
}


def _value_problem(name: str, value: Any) -> str | None:
    """Why a known EDGEJOBS value is unusable, or None."""
    if name in ("QUEUES", "REDACT_KEYS"):
        if isinstance(value, str) or not isinstance(value, list | tuple) or not all(
                isinstance(q, str) and q for q in value):
            return "must be a list of queue names" if name == "QUEUES" else (
                "must be a list of key names")
        if name == "QUEUES" and not value:
            return "must name at least one queue"
    elif name in _POSITIVE_INT:
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            return "must be a positive integer"
        if name == "CONCURRENCY" and value > MAX_CONCURRENCY:
            return f"must be at most {MAX_CONCURRENCY}"
    elif name in _NON_NEGATIVE_INT:
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            return "must be an integer >= 0"
    elif name in _POSITIVE_SECONDS:
        if not _is_number(value) or value <= 0:
            return "must be a positive number of seconds"
    elif name in _NON_NEGATIVE_NUMBER:
        if not _is_number(value) or value < 0:
            return "must be a number >= 0"
    elif (name in ("DEFAULT_RETRY_BACKOFF", "PREPARED_STATEMENTS", "TRACING")
          and not isinstance(value, bool)):
        return "must be True or False"
    elif name == "POOLER" and (not isinstance(value, str) or value not in POOLER_MODES):
        return "must be one of " + ", ".join(repr(mode) for mode in POOLER_MODES)
    elif name == "LISTEN_DATABASE" and value is not None:
        databases = getattr(settings, "DATABASES", None) or {}
        if not isinstance(value, str) or value not in databases:
            return "must be None or an alias in DATABASES"
        if not isinstance(databases[value], dict) or _vendor(
                databases[value].get("ENGINE")) != "postgresql":
            return "must name a PostgreSQL database"
    return None


_CRON_HINT = ("Each entry: {'cron': '0 9 * * 1-5', 'type': 'app.job', 'payload': {}, "
              "'timezone': 'UTC'}; see the cron how-to.")


@register(Tags.compatibility)
def check_cron(app_configs: Any = None, **kwargs: Any) -> list:
    """EDGEJOBS["CRON"]: each entry must be a schedule add_cron would accept."""
    raw = getattr(settings, "EDGEJOBS", None)
    declared = raw.get("CRON") if isinstance(raw, dict) else None
    if declared is None:
        return []
    if not isinstance(declared, dict):
        return [Error("EDGEJOBS['CRON'] must be a dict of schedule name -> schedule",
                      hint=_CRON_HINT, id="edgejobs.E010")]
    problems: list = []
    for name, entry in declared.items():
        where = f"EDGEJOBS['CRON'][{name!r}]"
        if not isinstance(entry, dict):
            problems.append(Error(f"{where} must be a dict, got {type(entry).__name__}",
                                  hint=_CRON_HINT, id="edgejobs.E010"))
            continue
        found = len(problems)
        try:
            crontimes.parse_expression(entry.get("cron"), where=where)
        except ValueError as exc:
            problems.append(Error(str(exc), hint="5 fields (minute hour day-of-month month "
                                  "day-of-week), or 6 with seconds last.", id="edgejobs.E011"))
        try:
            crontimes.get_zone(entry.get("timezone", "UTC"), where=where)
        except ValueError as exc:
            problems.append(Error(str(exc), hint="An IANA zone name, as zoneinfo knows it.",
                                  id="edgejobs.E012"))
        job_type = entry.get("type")
        if not isinstance(job_type, str) or job_type not in get_registry():
            problems.append(Error(
                f"{where}: no handler is registered for job type {job_type!r}",
                hint="Register it with @job(...) in an installed app's jobs.py; known types: "
                     + (", ".join(get_registry().names()) or "none"), id="edgejobs.E013"))
        if len(problems) == found:
            try:
                schedules.check_name(name, where=where)
                schedules.clean_definition(entry, where=where)
            except ValueError as exc:
                problems.append(Error(str(exc), hint=_CRON_HINT, id="edgejobs.E014"))
    return problems

# -- the database and the cache the app runs on ---------------------------------------------

#: SQLite transaction modes that take the write lock when a transaction begins.
_LOCKING_MODES = ("IMMEDIATE", "EXCLUSIVE")
#: What an edge cache backend needs installed: (module, distribution).
_EDGE_CACHE_NEEDS = {
    "RedisEdgeCache": (("django_redis", "django-redis"), ("redis", "redis")),
}


def _vendor(engine: Any) -> str | None:
    from django.db.utils import load_backend

    try:
        return load_backend(engine).DatabaseWrapper.vendor
    except Exception:  # a misconfigured ENGINE is Django's to report
        return None


def _text(value: Any) -> str:
    """A Python literal, with double quotes for strings (as settings files write them)."""
    if isinstance(value, str):
        import json

        return json.dumps(value, ensure_ascii=False)
    return repr(value)


def _dict_literal(mapping: dict[Any, Any]) -> str:
    return "{" + ", ".join(f"{_text(k)}: {_text(v)}" for k, v in mapping.items()) + "}"


def sqlite_problems(databases: dict[str, Any], alias: str) -> list:
    """W002: the jobs' database is SQLite without a transaction mode that locks at BEGIN."""
    db = databases.get(alias)
    if not isinstance(db, dict) or _vendor(db.get("ENGINE")) != "sqlite":
        return []
    options = db.get("OPTIONS") or {}
    mode = options.get("transaction_mode") if isinstance(options, dict) else None
    if isinstance(mode, str) and mode.upper() in _LOCKING_MODES:
        return []
    wanted = {**(options if isinstance(options, dict) else {}), "transaction_mode": "IMMEDIATE"}
    return [Warning(
        f"DATABASES[{alias!r}] is SQLite without \"transaction_mode\": \"IMMEDIATE\": a "
        "worker's transaction that reads and then writes can fail with 'database is locked' "
        "when another process writes at the same time",
        hint=f"Set DATABASES[{_text(alias)}][\"OPTIONS\"] = {_dict_literal(wanted)}",
        id="edgejobs.W002",
    )]


def edge_cache_problems(caches: dict[str, Any]) -> list:
    """E009: a cache alias uses an edge cache backend whose requirements are not installed."""
    import importlib.util

    problems = []
    for alias, config in caches.items():
        backend = config.get("BACKEND", "") if isinstance(config, dict) else ""
        if not isinstance(backend, str) or not backend.startswith("django_edgejobs."):
            continue
        needs = _EDGE_CACHE_NEEDS.get(backend.rsplit(".", 1)[-1], ())
        missing = [dist for module, dist in needs if importlib.util.find_spec(module) is None]
        if missing:
            problems.append(Error(
                f"CACHES[{alias!r}] uses {backend}, which needs {' and '.join(missing)}; "
                "not installed",
                hint="pip install 'django-edgejobs[redis]', or use "
                     "django_edgejobs.cache.DatabaseEdgeCache, which needs no Redis.",
                id="edgejobs.E009",
            ))
    return problems


def pooler_problems(raw: Any, databases: dict[str, Any], alias: str, *,
                    found: bool = False) -> list:
    """W004 and W005: the jobs' PostgreSQL database is behind a transaction pooler, declared
    (``EDGEJOBS["POOLER"] = "transaction"``) or ``found`` (``"auto"``, by the database check),
    and something needs the session such a pooler does not keep."""
    db = databases.get(alias)
    if not isinstance(raw, dict) or not isinstance(db, dict) or _vendor(
            db.get("ENGINE")) != "postgresql":
        return []
    if raw.get("POOLER") == "transaction":
        how = "EDGEJOBS['POOLER'] = 'transaction'"
    elif found:
        how = "a pooler answers for it and EDGEJOBS['POOLER'] is 'auto'"
    else:
        return []
    problems: list = []
    if not raw.get("LISTEN_DATABASE"):
        problems.append(Warning(
            f"The workers of DATABASES[{alias!r}] cannot be woken by notifications: it is "
            f"behind a transaction pooler ({how}), which loses a LISTEN, and "
            "EDGEJOBS['LISTEN_DATABASE'] is not set, so a new job waits for a worker's next "
            "poll (POLL_INTERVAL)",
            hint=f"Add an alias to DATABASES for the same database without the pooler (with "
                 f"\"TEST\": {{\"MIRROR\": {_text(alias)}}}) and name it in "
                 "EDGEJOBS['LISTEN_DATABASE']; or, if the pooler pools sessions, set "
                 "EDGEJOBS['POOLER'] = 'session'.",
            id="edgejobs.W004",
        ))
    options = db.get("OPTIONS") or {}
    threshold = options.get("prepare_threshold") if isinstance(options, dict) else None
    if threshold is not None:
        problems.append(Warning(
            f"DATABASES[{alias!r}] is behind a transaction pooler ({how}) but sets "
            f"OPTIONS['prepare_threshold'] = {threshold!r}: Django's own queries get prepared "
            "on a server connection that the next transaction may not get",
            hint="Remove \"prepare_threshold\" (Django's default, None, prepares nothing), "
                 "unless the pooler keeps prepared statements (PgBouncer >= 1.21 with "
                 "max_prepared_statements).",
            id="edgejobs.W005",
        ))
    if db.get("DISABLE_SERVER_SIDE_CURSORS") is not True:
        problems.append(Warning(
            f"DATABASES[{alias!r}] is behind a transaction pooler ({how}) without "
            "DISABLE_SERVER_SIDE_CURSORS = True: QuerySet.iterator() (the admin's job list "
            "uses it) declares a cursor that outlives its transaction",
            hint=f"Set DATABASES[{_text(alias)}][\"DISABLE_SERVER_SIDE_CURSORS\"] = True, as "
                 "Django's documentation advises for transaction pooling.",
            id="edgejobs.W005",
        ))
    return problems


@register(Tags.compatibility)
def check_pooler(app_configs: Any = None, **kwargs: Any) -> list:
    from django.db import router

    return pooler_problems(getattr(settings, "EDGEJOBS", None) or {},
                           getattr(settings, "DATABASES", {}) or {},
                           router.db_for_write(Job) or "default")


@register(Tags.database)
def check_pooler_found(app_configs: Any = None, databases: Any = None, **kwargs: Any) -> list:
    """W004 and W005 for ``POOLER = "auto"``, a database check (``check --database <alias>``,
    ``migrate``): whether a pooler answers for the jobs' database is found by asking it.
    Skipped when that database is not among those asked for, or not reachable."""
    from django.core.exceptions import ImproperlyConfigured
    from django.db import DatabaseError, connections, router

    alias = router.db_for_write(Job) or "default"
    raw = getattr(settings, "EDGEJOBS", None) or {}
    if (not databases or alias not in databases or not isinstance(raw, dict)
            or raw.get("POOLER", "auto") != "auto"
            or connections[alias].vendor != "postgresql"):
        return []
    try:
        connection = connections[alias]
        connection.ensure_connection()
        with connection.wrap_database_errors:
            found = behind_transaction_pooler(alias, connection.connection)
    except (DatabaseError, ImproperlyConfigured):
        return []
    return pooler_problems(raw, getattr(settings, "DATABASES", {}) or {}, alias, found=found)


@register(Tags.compatibility)
def check_sqlite_transaction_mode(app_configs: Any = None, **kwargs: Any) -> list:
    from django.db import router

    alias = router.db_for_write(Job) or "default"
    return sqlite_problems(getattr(settings, "DATABASES", {}) or {}, alias)


@register(Tags.caches)
def check_edge_caches(app_configs: Any = None, **kwargs: Any) -> list:
    caches = getattr(settings, "CACHES", None)
    return edge_cache_problems(caches) if isinstance(caches, dict) else []


# -- jobs no handler here can run ------------------------------------------------------------

#: How many unknown types W003 names; the rest are counted.
UNKNOWN_TYPES_SHOWN = 5


def queued_type_counts(alias: str) -> list[tuple[str, int]]:
    """(type, count) of the pending and waiting jobs: one GROUP BY over those rows, which the
    (status, completed_at) index finds without reading finished jobs."""
    from contextlib import nullcontext

    from django.db import connections, transaction
    from django.db.models import CharField, Count, F, Func

    connection = connections[alias]
    # SQLite would rather walk the whole (type, created_at) index, finished jobs included,
    # than sort a few groups: grouping by an expression of the type leaves it the status index.
    group: Any = (Func(F("type"), template="(%(expressions)s || '')", output_field=CharField())
                  if connection.vendor == "sqlite" else F("type"))
    qs = (Job.objects.using(alias).filter(status__in=(JobStatus.PENDING, JobStatus.WAITING))
          .order_by().annotate(queued_type=group).values_list("queued_type")
          .annotate(n=Count("*")))
    # Inside a caller's transaction, a savepoint keeps a failed query (tables not migrated)
    # from breaking it; outside, no transaction (on SQLite it could take the write lock).
    with transaction.atomic(using=alias) if connection.in_atomic_block else nullcontext():
        return list(qs)


def unknown_type_problems(counts: list[tuple[str, int]], registry: Any) -> list:
    """W003: queued jobs whose type this process has no handler for."""
    unknown = sorted(((t, n) for t, n in counts if t not in registry), key=lambda r: (-r[1], r[0]))
    if not unknown:
        return []
    named = ", ".join(f"{t!r} ({n})" for t, n in unknown[:UNKNOWN_TYPES_SHOWN])
    more = len(unknown) - UNKNOWN_TYPES_SHOWN
    if more > 0:
        named += f" and {more} more type(s)"
    total = sum(n for _, n in unknown)
    grace = get_settings().UNKNOWN_TYPE_GRACE
    grace_text = f" ({grace:g} s)" if _is_number(grace) else ""  # else E005 reports it
    return [Warning(
        f"{total} pending or waiting job(s) have a type with no handler registered in this "
        f"process: {named}",
        hint="During a rolling deploy this passes once the new code runs everywhere: a worker "
             "without the handler hands such a job back, and fails it "
             f"EDGEJOBS['UNKNOWN_TYPE_GRACE']{grace_text} after "
             "its creation. Otherwise register the type with @job in an installed app's "
             "jobs.py, or cancel the jobs.",
        id="edgejobs.W003",
    )]


@register(Tags.database)
def check_unknown_job_types(app_configs: Any = None, databases: Any = None,
                            **kwargs: Any) -> list:
    """W003, a database check: Django runs it for ``check --database <alias>`` and ``migrate``
    only. Skipped when the jobs' database is not among those, not reachable or not migrated."""
    from django.core.exceptions import ImproperlyConfigured
    from django.db import DatabaseError, router

    alias = router.db_for_write(Job) or "default"
    if not databases or alias not in databases:
        return []
    try:
        counts = queued_type_counts(alias)
    except (DatabaseError, ImproperlyConfigured):
        return []
    return unknown_type_problems(counts, get_registry())
