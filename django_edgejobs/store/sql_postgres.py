"""Named SQL of PostgreSQL: every statement ``PostgresStore`` and the ``Listener`` run.

Each statement's text is here once, under its name, built from the model's tables when the
module loads; a builder function stands where the text depends on the call (which columns of
an enqueue are arrays). The docstrings give the parameters, in order. The texts are what the
server prepares (``PREPARED_STATEMENTS``): a change of one is a new prepared statement."""

from __future__ import annotations

from ..models import Job, JobDependency, JobEvent, Queue
from .rows import job_columns

JOBS = Job._meta.db_table
EVENTS = JobEvent._meta.db_table
QUEUES = Queue._meta.db_table
DEPENDENCIES = JobDependency._meta.db_table

# -- wake-ups ---------------------------------------------------------------------------------

#: The notification channel: enqueue notifies it once per queue, workers LISTEN to it.
CHANNEL = "django_edgejobs"

#: The listener's statement, on its own connection (autocommit).
LISTEN_SQL = f'LISTEN "{CHANNEL}"'

#: The server process behind a connection: through a pooler it is not the one the connection
#: was told at startup (``store/pooler.py``).
BACKEND_PID_SQL = "SELECT pg_backend_pid()"

#: Wake the workers of some queues when the transaction commits. Params: channel, queues.
NOTIFY_SQL = "SELECT pg_notify(%s, q) FROM unnest(%s::text[]) AS q"

# -- enqueue ----------------------------------------------------------------------------------


def moment_column_sql(name: str) -> str:
    """A parameter column of moments with its companion of seconds (``{name}_in``): the
    moment given, else that many seconds from the statement's clock."""
    return f"COALESCE({name}, statement_timestamp() + {name}_in * interval '1 second')"


#: A moment column the INSERT fills from the database's clock (created_at, updated_at).
STATEMENT_MOMENT_SQL = "statement_timestamp()"


def json_column_sql(name: str) -> str:
    """A parameter column of JSON text, as ``jsonb``."""
    return f"{name}::jsonb"


def scalar_param_sql(type_: str) -> str:
    """One value of a column that every job of the enqueue shares (binary)."""
    return f"%b::{type_}"


def array_param_sql(type_: str) -> str:
    """One array of a column's values, one per job (binary)."""
    return f"%b::{type_}[]"


def insert_jobs_sql(columns: str, selected: str, array_names: list[str],
                    array_params: list[str], scalar_names: list[str], scalar_params: list[str],
                    conflicts: bool) -> str:
    """INSERT_JOBS: the rows, their ``added`` events and the notification, in one statement;
    it yields each inserted job's id, run_at and expires_at (and the notices' count).

    ``columns``: the job table's; ``selected``: what the SELECT yields for them from the
    parameter columns, which come from ``unnest`` of the arrays (``array_names``) and one
    ``VALUES`` row of the shared values (``scalar_names``). ``conflicts``: skip a row whose
    idempotency key is taken. ``created_at`` and ``updated_at`` are the statement's moment
    (``selected`` says so): the database's clock, not the enqueuing host's. Params: the arrays,
    the shared values, the channel."""
    sources = []
    if array_names:
        sources.append(f"unnest({', '.join(array_params)}) AS a({', '.join(array_names)})")
    if scalar_names:
        sources.append(f"(VALUES ({', '.join(scalar_params)})) AS s({', '.join(scalar_names)})")
    conflict = "ON CONFLICT DO NOTHING " if conflicts else ""
    return (
        f'WITH j AS (INSERT INTO "{JOBS}" ({columns}) '
        f"SELECT {selected} FROM {' CROSS JOIN '.join(sources)} "
        f"{conflict}RETURNING id, queue, run_at, expires_at, created_at), "
        f'e AS (INSERT INTO "{EVENTS}" (job_id, type, data, created_at) '
        "SELECT id, 'added', '{}'::jsonb, statement_timestamp() FROM j), "
        "n AS (SELECT pg_notify(%s, q.queue) FROM (SELECT DISTINCT queue FROM j) q) "
        "SELECT id, run_at, expires_at, created_at, (SELECT count(*) FROM n) FROM j"
    )


# -- claim ------------------------------------------------------------------------------------

_DUE = ("status = 'pending' AND run_at <= statement_timestamp() "
        "AND (expires_at IS NULL OR expires_at > statement_timestamp())")
# Jobs with a concurrency or rate limit are the limited claim's (``store/limits.py``).
_UNLIMITED = " AND concurrency_key = '' AND rate_key = ''"
# The claim index is ordered within a queue: "queue = ANY(...)" would read every due job of
# those queues and sort them. Take the best ``limit`` of each queue by index (locking them),
# then the best of those; one queue is the same plan with one loop. A paused queue (its
# ``Queue`` row, read by this statement's snapshot) gives none.
def _picked(only: bool, exclude: bool) -> str:
    types = (" AND type = ANY(%s::text[])" if only else "") + (
        " AND type <> ALL(%s::text[])" if exclude else "")
    return (f"SELECT j.id FROM unnest(%s::text[]) AS q(name) CROSS JOIN LATERAL "
            f'(SELECT id, priority, run_at FROM "{JOBS}" '
            f"WHERE queue = q.name AND {_DUE}{_UNLIMITED}{types} "
            "ORDER BY priority DESC, run_at "
            "LIMIT %s FOR UPDATE SKIP LOCKED) AS j "
            f'WHERE NOT EXISTS (SELECT 1 FROM "{QUEUES}" AS p WHERE p.name = q.name '
            "AND p.paused) "
            "ORDER BY j.priority DESC, j.run_at LIMIT %s")


def claim_sql(only: bool = False, exclude: bool = False) -> str:
    """CLAIM: take due pending jobs: processing, attempt counted, leased; their ``processing``
    events; every column of the claimed rows (``rows.job_columns``), best first. ``only`` /
    ``exclude``: of these job types / not of these (``runworker --type``).
    Params: queues, [types], [excluded types], limit (per queue), limit, owner, lease
    token."""
    return (
        f"WITH picked AS MATERIALIZED ({_picked(only, exclude)}), "
        f'claimed AS (UPDATE "{JOBS}" AS t SET status = \'processing\', '
        "attempts = t.attempts + 1, lease_owner = %s, lease_token = %s, "
        "started_at = statement_timestamp(), updated_at = statement_timestamp() "
        "FROM picked WHERE t.id = picked.id "
        f"RETURNING {job_columns('t')}), "
        f'ev AS (INSERT INTO "{EVENTS}" (job_id, type, data, created_at) '
        "SELECT id, 'processing', jsonb_build_object('attempt', attempts, 'worker', "
        "lease_owner), statement_timestamp() FROM claimed) "
        "SELECT * FROM claimed ORDER BY priority DESC, run_at"
    )


#: The claim of every job type, the one most workers run.
CLAIM_SQL = claim_sql()

#: Hold advisory locks on flow-control keys until the transaction ends, in one order (no
#: deadlock between two claims). Params: the keys.
LOCK_KEYS_SQL = ("SELECT pg_advisory_xact_lock(h) FROM (SELECT hashtextextended(k, 0) AS h "
                 "FROM unnest(%s::text[]) AS k ORDER BY h) AS s")

# -- finish -----------------------------------------------------------------------------------

#: Complete jobs, each fenced by its lease, and write their ``completed`` events; yields the
#: ids completed, each with whether dependents wait for it. Params: ids, lease tokens,
#: results (JSON text), event data (JSON text).
COMPLETE_MANY_SQL = (
    "WITH v (id, token, result, event, began, ended) AS (SELECT * FROM "
    "unnest(%s::uuid[], %s::uuid[], %s::text[], %s::text[], %s::float8[], %s::float8[])), "
    f'u AS (UPDATE "{JOBS}" AS t SET status = \'completed\', '
    "result = v.result::jsonb, "
    # The handler's begin and end (seconds ago; NULL: the claim and now), never before the
    # claim. GREATEST skips a NULL.
    "started_at = GREATEST(t.started_at, statement_timestamp() - v.began * interval '1 second'), "
    "completed_at = GREATEST(t.started_at, statement_timestamp() "
    "- COALESCE(v.ended, 0) * interval '1 second'), updated_at = statement_timestamp(), "
    "lease_token = NULL, lease_owner = '' FROM v "
    # ``status || ''``: an expression no index matches, so each row is found by its primary
    # key. With ``status = 'processing'`` the planner may read every processing job through
    # the partial index, whose statistics (taken while the jobs were pending) call it nearly
    # empty: a nested loop of the batch over thousands of jobs when a completer has fallen
    # behind (1.7 s for 500 outcomes against 10,000 processing jobs, instead of 18 ms).
    "WHERE t.id = v.id AND t.lease_token = v.token AND t.status || '' = 'processing' "
    "RETURNING t.id, v.event), "
    f'e AS (INSERT INTO "{EVENTS}" (job_id, type, data, created_at) '
    "SELECT id, 'completed', event::jsonb, statement_timestamp() FROM u) "
    # Which have dependents waiting (an index probe of the unresolved edges; settled after
    # the commit, see ``store/dependencies.py``).
    f'SELECT u.id, EXISTS (SELECT 1 FROM "{DEPENDENCIES}" d '
    "WHERE d.depends_on_id = u.id AND NOT d.resolved) FROM u"
)

# -- reads ------------------------------------------------------------------------------------

_TAGS = f'"{JOBS}"."tags"'
#: A job carries every tag. Params: the tags (JSON text).
TAGS_ALL_SQL = f"{_TAGS} @> %s::jsonb"
#: ... every tag and no other. Params: the tags (JSON text), twice.
TAGS_EXACT_SQL = f"({_TAGS} @> %s::jsonb AND {_TAGS} <@ %s::jsonb)"
#: ... one of the tags. Params: the tags.
TAGS_ANY_SQL = f"{_TAGS} ?| %s::text[]"
#: ... none of the tags. Params: the tags.
TAGS_NONE_SQL = f"NOT ({_TAGS} ?| %s::text[])"
