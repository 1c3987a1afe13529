"""Named SQL of SQLite: every statement ``SQLiteStore`` and the ``CommitWatcher`` run.

Each statement's text is here once, under its name, built from the model's tables when the
module loads; a builder function stands where the text repeats a part per queue or per row.
The docstrings give the parameters, in order. Moments are parameters (``sqlite_now``): SQLite's
own clock has milliseconds, the times Django writes microseconds (see ``models.clock``)."""

from __future__ import annotations

from ..models import Job, JobDependency, JobEvent, Queue
from .rows import job_columns

JOBS = Job._meta.db_table
EVENTS = JobEvent._meta.db_table
QUEUES = Queue._meta.db_table
DEPENDENCIES = JobDependency._meta.db_table
_COLUMNS = job_columns()

#: Changes when another connection commits to the database file (the commit watcher).
DATA_VERSION_SQL = "PRAGMA data_version"

# -- enqueue ----------------------------------------------------------------------------------

#: One job row (run once per row: ``executemany``). Params: ``rows.job_values``.
INSERT_JOB_SQL = (f'INSERT INTO "{JOBS}" ({_COLUMNS}) '
                  f"VALUES ({', '.join(['%s'] * len(Job._meta.concrete_fields))})")
#: ... skipping the row if its idempotency key is taken (``ON CONFLICT DO NOTHING`` skips only
#: those, where ``INSERT OR IGNORE`` would also skip a row breaking NOT NULL).
INSERT_JOB_UNLESS_KEY_TAKEN_SQL = INSERT_JOB_SQL + " ON CONFLICT DO NOTHING"

# -- claim ------------------------------------------------------------------------------------

# 'pending' is a literal so the planner can use the partial index. ``+run_at``: not a range the
# index may use. With statistics saying the jobs share a queue and a priority (ANALYZE after
# one enqueue_many), SQLite preferred a skip-scan on run_at and sorted every due job; the
# claim index's order is what stops the scan.
_DUE = ("status = 'pending' AND +run_at <= %s "
        "AND (expires_at IS NULL OR expires_at > %s) "
        # Jobs with a concurrency or rate limit are the limited claim's (``store/limits.py``).
        "AND concurrency_key = '' AND rate_key = ''")
def _claim_queue_sql(only: int, exclude: int) -> str:
    """One queue's best due jobs, by the claim index; none while the queue is paused.
    Params: queue, now, now, [``only`` types], [``exclude`` types], queue, limit."""
    types = ""
    if only:
        types += f" AND type IN ({', '.join(['%s'] * only)})"
    if exclude:
        types += f" AND type NOT IN ({', '.join(['%s'] * exclude)})"
    return (f'SELECT * FROM (SELECT id, priority, run_at FROM "{JOBS}" '
            f"WHERE queue = %s AND {_DUE}{types} AND NOT EXISTS "
            f'(SELECT 1 FROM "{QUEUES}" WHERE name = %s AND paused) '
            "ORDER BY priority DESC, run_at LIMIT %s)")


def claim_sql(queue_count: int, only: int = 0, exclude: int = 0) -> str:
    """CLAIM: take due pending jobs (processing, attempt counted, leased) and return every
    column of them (``rows.job_columns``). The claim index is ordered within a queue: for
    several queues, take the best ``limit`` of each by index and then the best of those,
    instead of letting SQLite read and sort every due job of those queues. One ``UPDATE``, so
    its first statement takes the write lock. ``only`` / ``exclude``: how many job types the
    claim is limited to / keeps out (``runworker --type``).

    Params: 'processing', owner, lease token, now, now, then ``_claim_queue_sql``'s for each
    queue, then limit."""
    picked = ("SELECT id FROM ("
              + " UNION ALL ".join([_claim_queue_sql(only, exclude)] * queue_count)
              + ") ORDER BY priority DESC, run_at LIMIT %s")
    return (
        f'UPDATE "{JOBS}" SET status = %s, attempts = attempts + 1, lease_owner = %s, '
        f"lease_token = %s, started_at = %s, updated_at = %s "
        f"WHERE id IN ({picked}) RETURNING {_COLUMNS}"
    )


# -- finish -----------------------------------------------------------------------------------

_COMPLETE_MANY_UPDATE = (
    f'UPDATE "{JOBS}" SET status = %s, result = v.result, '
    # The handler's begin and end (NULL: the claim and now), never before the claim. SQLite's
    # MAX() of a NULL is NULL, hence the COALESCEs; the right-hand sides read the old row.
    "started_at = MAX(started_at, COALESCE(v.began, started_at)), "
    "completed_at = MAX(started_at, COALESCE(v.ended, %s)), updated_at = %s, "
    "lease_token = NULL, lease_owner = '' FROM v "
    f'WHERE "{JOBS}".id = v.id AND "{JOBS}".lease_token = v.token '
    f'AND "{JOBS}".status = %s RETURNING "{JOBS}".id, '
    # Whether dependents wait for it (the partial index of unresolved edges).
    f'EXISTS (SELECT 1 FROM "{DEPENDENCIES}" d WHERE d.depends_on_id = "{JOBS}".id '
    "AND NOT d.resolved)"
)


def complete_many_sql(count: int) -> str:
    """COMPLETE_MANY: complete ``count`` jobs, each fenced by its lease; yields the ids
    completed, each with whether dependents wait for it (the events are
    ``insert_events_sql``'s). Params: (id, lease token, result as JSON text, the handler's
    begin and end or NULLs) per job, then 'completed', now, now, 'processing'."""
    rows = ", ".join(["(%s, %s, %s, %s, %s)"] * count)
    return (f"WITH v (id, token, result, began, ended) AS (VALUES {rows}) "
            + _COMPLETE_MANY_UPDATE)


def open_dependents_sql(count: int) -> str:
    """OPEN_DEPENDENTS: which of ``count`` jobs have dependency edges still unresolved (the
    partial index of unresolved edges). Params: the job ids."""
    marks = ", ".join(["%s"] * count)
    return (f'SELECT DISTINCT depends_on_id FROM "{DEPENDENCIES}" '
            f"WHERE NOT resolved AND depends_on_id IN ({marks})")


def insert_events_sql(count: int) -> str:
    """INSERT_EVENTS: ``count`` events. Params: (job id, type, data as JSON text, created_at)
    per event."""
    marks = ", ".join(["(%s, %s, %s, %s)"] * count)
    return f'INSERT INTO "{EVENTS}" (job_id, type, data, created_at) VALUES {marks}'
