"""The ceiling: what PostgreSQL itself does with the minimal SQL life cycle of a job.

pgbench runs, from C and with nothing else in the way, the statements a queue needs at the
least, on a job table shaped like a real one (payload, status, priority, run time, attempts,
lease, timestamps; a partial index that serves the claim):

- ``enqueue``: INSERT (one job, or 50 in one statement);
- ``claim``: UPDATE ... FROM (SELECT ... ORDER BY priority, run time LIMIT n
  FOR UPDATE SKIP LOCKED), then ``complete``: UPDATE by id. Each statement is its own
  transaction, as in a worker that claims, runs and then records the outcome;
- ``lifecycle``: the three in a row (the job a client inserts is claimed by whoever gets it).

Each script runs per job and batched 50 at a time, with 1 and 4 clients, on a fresh table.
Jobs/s are counted from the table afterwards (rows inserted, rows completed), so an empty claim
never counts; ``drain`` starts from 10,000 queued jobs, as W2 does.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from harness import OUT, PG, ensure_database

DB = "bench_ceiling"

SCHEMA = """
DROP TABLE IF EXISTS ceiling_job;
CREATE TABLE ceiling_job (
    id bigserial PRIMARY KEY,
    queue text NOT NULL DEFAULT 'default',
    type text NOT NULL DEFAULT 'bench.noop',
    payload jsonb NOT NULL DEFAULT '{}',
    status text NOT NULL DEFAULT 'pending',
    priority integer NOT NULL DEFAULT 0,
    run_at timestamptz NOT NULL DEFAULT now(),
    attempts integer NOT NULL DEFAULT 0,
    lease_owner text,
    created_at timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz,
    completed_at timestamptz
);
CREATE INDEX ceiling_job_claim ON ceiling_job (queue, priority DESC, run_at, id)
    WHERE status = 'pending';
"""


def enqueue_sql(batch: int) -> str:
    if batch == 1:
        return "INSERT INTO ceiling_job (payload) VALUES ('{}');\n"
    return f"INSERT INTO ceiling_job (payload) SELECT '{{}}' FROM generate_series(1, {batch});\n"


def drain_sql(batch: int) -> str:
    return f"""WITH next AS (
    SELECT id FROM ceiling_job
    WHERE status = 'pending' AND queue = 'default' AND run_at <= now()
    ORDER BY priority DESC, run_at, id LIMIT {batch} FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE ceiling_job j SET status = 'processing', attempts = j.attempts + 1,
        lease_owner = 'pgbench', started_at = now()
    FROM next WHERE j.id = next.id RETURNING j.id
)
SELECT coalesce((SELECT string_agg(id::text, ',') FROM claimed), '0') AS ids
\\gset
UPDATE ceiling_job SET status = 'completed', completed_at = now() WHERE id IN (:ids);
"""


SCRIPTS = {
    "enqueue": enqueue_sql,
    "drain": drain_sql,
    "lifecycle": lambda batch: enqueue_sql(batch) + drain_sql(batch),
}


def pgbench() -> str:
    found = shutil.which("pgbench")
    if found:
        return found
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin/pgbench"), reverse=True):
        return str(candidate)
    raise SystemExit("pgbench not found: apt-get install postgresql-client (or postgresql-contrib)")


def server_version(conn) -> str:
    return conn.execute("SHOW server_version").fetchone()[0]


def run(script: str, batch: int, clients: int, seconds: float) -> dict:
    """One pgbench run on a fresh table; returns jobs/s counted from the table.

    Per job, a run lasts ``seconds``. Batched, it does a fixed amount of work: 5,000 jobs
    enqueued, or the 10,000 queued jobs drained (as W1 and W2 do), or ``seconds`` of life
    cycles. ``drain`` starts from 10,000 queued jobs, as W2 does.
    """
    import psycopg

    url = ensure_database(DB)
    path = OUT / "pgbench" / f"{script}_{batch}.sql"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(SCRIPTS[script](batch))
    fixed = {"enqueue": 5000, "drain": 10_000}.get(script) if batch > 1 else None
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SCHEMA)
        if script == "drain":
            conn.execute("INSERT INTO ceiling_job (payload) SELECT '{}' "
                         "FROM generate_series(1, 10000)")
        conn.execute("ANALYZE ceiling_job")
        host = re.match(r"\w+://(?:(\w+)@)?([^:/]+):?(\d+)?", PG)
        length = ["-t", str(fixed // batch // clients)] if fixed else ["-T", str(seconds)]
        argv = [pgbench(), "-n", "-M", "simple", *length, "-c", str(clients),
                "-j", str(clients), "-f", str(path), "-h", host.group(2),
                "-p", host.group(3) or "5432", "-U", host.group(1) or "postgres", DB]
        out = subprocess.run(argv, capture_output=True, text=True, check=False)
        if out.returncode != 0:
            raise RuntimeError(f"pgbench failed: {out.stderr.strip()[-500:]}")
        if script == "enqueue":
            jobs = conn.execute("SELECT count(*) FROM ceiling_job").fetchone()[0]
        else:
            jobs = conn.execute("SELECT count(*) FROM ceiling_job "
                                "WHERE status = 'completed'").fetchone()[0]
        conn.execute("DROP TABLE ceiling_job")
    tps = float(re.search(r"tps = ([\d.]+)", out.stdout).group(1))
    done = int(re.search(r"actually processed: (\d+)", out.stdout).group(1))
    return {"rate": jobs / (done / tps), "jobs": jobs, "tps": tps}


CASES = [(script, batch, clients) for script in ("lifecycle", "enqueue", "drain")
         for batch in (1, 50) for clients in (1, 4)] + [("drain", 1, 2)]
