"""pgqueuer on PostgreSQL (asyncpg), its worker started with ``pgqueuer.run(create, ...)``.

(``pgq run`` is the same call behind a CLI, but pgqueuer 1.6.0's CLI fails at start-up with the
typer it installs: its ``--log-level`` parser hands a str where an enum is expected.)

Jobs are ``async def`` entrypoints. pgqueuer deletes a finished job from its queue table and
logs every transition in ``pgqueuer_log`` (queued, picked, successful, exception...): that log
is the queue state read here. Its concurrency knobs are ``--batch-size`` and
``--max-concurrent-tasks`` (which must be at least twice the batch size): c=1 runs as batch 1 /
at most 2 in flight (its minimum), c=4 as batch 2 / at most 4.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import asyncpg
import marks
from harness import HERE, Contender, ensure_database, pg_url
from pgqueuer import Job, PgQueuer, Queries
from pgqueuer.db import AsyncpgDriver
from pgqueuer.errors import RetryRequested
from pgqueuer.models import Schedule

DB = "bench_pgqueuer"
FINISHED = "('successful', 'exception', 'failed', 'canceled', 'deleted')"


def payload_of(job: Job) -> dict:
    return json.loads(job.payload) if job.payload else {}


@asynccontextmanager
async def create() -> AsyncIterator[PgQueuer]:
    """The worker's factory (what ``pgq run c_pgqueuer:create`` would call)."""
    conn = await asyncpg.connect(pg_url(DB))
    pgq = PgQueuer.from_asyncpg_connection(conn)

    @pgq.entrypoint("noop")
    async def noop(job: Job) -> None:
        return None

    @pgq.entrypoint("mark")
    async def mark(job: Job) -> None:
        marks.start("mark", payload_of(job))

    @pgq.entrypoint("quick")
    async def quick(job: Job) -> None:
        marks.start("quick", {})
        marks.done("quick")

    @pgq.entrypoint("sleep")
    async def sleep(job: Job) -> None:
        marks.start("sleep", {})
        await asyncio.sleep(marks.SLEEP_SECONDS)
        marks.done("sleep")

    @pgq.entrypoint("flaky")
    async def flaky(job: Job) -> None:
        marks.start("flaky", {})
        if job.attempts == 0:
            raise RetryRequested(delay=timedelta(0), reason="first attempt fails")
        marks.done("flaky")

    if os.environ.get("BENCH_CRON"):
        @pgq.schedule("tick", "* * * * * *")  # croniter's 6th field: seconds
        async def tick(schedule: Schedule) -> None:
            marks.record("tick")

    try:
        yield pgq
    finally:
        await conn.close()


class PgQueuerContender(Contender):
    name = "pgqueuer"
    bulk_api = "Queries.enqueue(lists)"
    notes = ["jobs are async def entrypoints; worker: pgqueuer.run() (LISTEN/NOTIFY, defaults)",
             "c=1 -> --batch-size 1 --max-concurrent-tasks 2 (its minimum), "
             "c=4 -> --batch-size 2 --max-concurrent-tasks 4",
             "cron: @pgq.schedule with a seconds field, run by the same process"]

    def __init__(self) -> None:
        ensure_database(DB)
        self.loop = asyncio.new_event_loop()
        self.conn = self.loop.run_until_complete(asyncpg.connect(pg_url(DB)))
        self.queries = Queries(AsyncpgDriver(self.conn))

    def run(self, coro):
        return self.loop.run_until_complete(coro)

    def version(self) -> str:
        from importlib.metadata import version

        return version("pgqueuer")

    def setup(self) -> None:
        if not self.run(self.conn.fetchval("SELECT to_regclass('pgqueuer') IS NOT NULL")):
            self.run(self.queries.install())

    def reset(self) -> None:
        self.run(self.conn.execute(
            "TRUNCATE pgqueuer, pgqueuer_log, pgqueuer_statistics, pgqueuer_schedules"))

    def analyze(self) -> None:
        self.run(self.conn.execute("ANALYZE"))

    @staticmethod
    def encode(payload: dict) -> bytes | None:
        return json.dumps(payload).encode() if payload else None

    def enqueue(self, kind: str, payload: dict) -> None:
        self.run(self.queries.enqueue(kind, self.encode(payload)))

    def enqueue_each(self, kind: str, payloads) -> None:
        async def go():
            for payload in payloads:
                await self.queries.enqueue(kind, self.encode(payload))
        self.run(go())

    def enqueue_many(self, kind: str, payloads) -> None:
        self.run(self.queries.enqueue([kind] * len(payloads),
                                      [self.encode(p) for p in payloads], [0] * len(payloads)))

    def worker(self, concurrency: int, *, cron: bool = False) -> tuple[list[str], dict]:
        batch = max(1, concurrency // 2)
        argv = [sys.executable, "c_pgqueuer.py", str(batch), str(2 * batch)]
        return argv, {"PYTHONPATH": str(HERE), **({"BENCH_CRON": "1"} if cron else {})}

    def finished(self) -> int:
        return self.run(self.conn.fetchval(
            f"SELECT count(*) FROM pgqueuer_log WHERE status IN {FINISHED} "
            "AND entrypoint <> 'tick'"))

    def verify(self, expected: dict[str, int]) -> dict[str, Any]:
        rows = self.run(self.conn.fetch(
            "SELECT entrypoint, string_agg(status::text, ',' ORDER BY id) AS path "
            "FROM pgqueuer_log WHERE entrypoint <> 'tick' GROUP BY job_id, entrypoint"))
        left = self.run(self.conn.fetchval("SELECT count(*) FROM pgqueuer"))
        got = Counter((r["entrypoint"], r["path"]) for r in rows)
        once = "queued,picked,successful"
        want = Counter({(k, "queued,picked,queued,picked,successful" if k == "flaky" else once): v
                        for k, v in expected.items() if k != "mix"})
        return {"ok": got == want and left == 0,
                "how": "pgqueuer_log per job: queued, picked, successful (picked twice for the "
                       "jobs that fail once); queue table empty",
                "states": {" ".join(k): v for k, v in got.items()}}

    def close(self) -> None:
        self.run(self.conn.close())
        self.loop.close()


if __name__ == "__main__":  # a worker: c_pgqueuer.py BATCH_SIZE MAX_CONCURRENT_TASKS
    import logging

    import pgqueuer

    logging.basicConfig(level=logging.WARNING)
    asyncio.run(pgqueuer.run(create, batch_size=int(sys.argv[1]),
                             max_concurrent_tasks=int(sys.argv[2])))
