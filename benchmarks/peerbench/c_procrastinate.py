"""procrastinate on PostgreSQL (psycopg 3 connector), with its own CLI worker.

Jobs are ``async def`` (procrastinate's native kind; sync ones go through a thread). The
queue's state: ``procrastinate_jobs.status`` and one ``started`` event per attempt in
``procrastinate_events``.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections import Counter
from typing import Any

import marks
import procrastinate
from harness import HERE, Contender, ensure_database, pg_url

DB = "bench_procrastinate"
app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=pg_url(DB)))


@app.task(name="noop")
async def noop() -> None:
    return None


@app.task(name="mark")
async def mark(t: Any = 0) -> None:
    marks.start("mark", {"t": t})


@app.task(name="quick")
async def quick() -> None:
    marks.start("quick", {})
    marks.done("quick")


@app.task(name="sleep")
async def sleep() -> None:
    marks.start("sleep", {})
    await asyncio.sleep(marks.SLEEP_SECONDS)
    marks.done("sleep")


@app.task(name="flaky", pass_context=True, retry=1)  # one retry, immediately
async def flaky(context: procrastinate.JobContext) -> None:
    marks.start("flaky", {})
    if context.job.attempts == 0:
        raise RuntimeError("first attempt fails")
    marks.done("flaky")


if os.environ.get("BENCH_CRON"):
    @app.periodic(cron="* * * * * *")  # a 6th field: seconds
    @app.task(name="tick")
    async def tick(timestamp: int) -> None:
        marks.record("tick")


TASKS = {"noop": noop, "mark": mark, "quick": quick, "sleep": sleep, "flaky": flaky}
FINISHED = "('succeeded', 'failed', 'cancelled', 'aborted')"


class Procrastinate(Contender):
    name = "procrastinate"
    bulk_api = "batch_defer_async"
    notes = ["jobs are async def; enqueue with defer_async / batch_defer_async",
             "worker: procrastinate worker --concurrency N (LISTEN/NOTIFY on, defaults)",
             "cron: @app.periodic with a seconds field, run by the worker"]

    def __init__(self) -> None:
        ensure_database(DB)
        self.loop = asyncio.new_event_loop()
        self.loop.run_until_complete(app.open_async())

    def run(self, coro):
        return self.loop.run_until_complete(coro)

    def sql(self, query: str) -> list[tuple]:
        async def go():
            return await app.connector.execute_query_all_async(query)
        return self.run(go())

    def execute(self, query: str) -> None:
        self.run(app.connector.execute_query_async(query))

    def version(self) -> str:
        from importlib.metadata import version

        return version("procrastinate")

    def setup(self) -> None:
        have = self.sql("SELECT to_regclass('procrastinate_jobs') IS NOT NULL AS ok")
        if not have[0]["ok"]:
            self.run(app.schema_manager.apply_schema_async())

    def reset(self) -> None:
        self.execute("TRUNCATE procrastinate_events, procrastinate_periodic_defers, "
                 "procrastinate_jobs, procrastinate_workers RESTART IDENTITY CASCADE")

    def analyze(self) -> None:
        self.execute("ANALYZE")

    def enqueue(self, kind: str, payload: dict) -> None:
        self.run(TASKS[kind].defer_async(**payload))

    def enqueue_each(self, kind: str, payloads) -> None:
        task = TASKS[kind]

        async def go():
            for payload in payloads:
                await task.defer_async(**payload)
        self.run(go())

    def enqueue_many(self, kind: str, payloads) -> None:
        self.run(TASKS[kind].batch_defer_async(*payloads))

    def worker(self, concurrency: int, *, cron: bool = False) -> tuple[list[str], dict]:
        argv = [os.path.join(os.path.dirname(sys.executable), "procrastinate"),
                "--app=c_procrastinate.app", "--log-level=warning", "worker",
                f"--concurrency={concurrency}"]
        return argv, {"PYTHONPATH": str(HERE), **({"BENCH_CRON": "1"} if cron else {})}

    def finished(self) -> int:
        rows = self.sql("SELECT count(*) AS n FROM procrastinate_jobs "
                        f"WHERE status IN {FINISHED} AND task_name <> 'tick'")
        return rows[0]["n"]

    def verify(self, expected: dict[str, int]) -> dict[str, Any]:
        rows = self.sql(
            "SELECT j.task_name, j.status::text AS status, "
            "(SELECT count(*) FROM procrastinate_events e "
            " WHERE e.job_id = j.id AND e.type = 'started') AS starts "
            "FROM procrastinate_jobs j WHERE j.task_name <> 'tick'")
        got = Counter((r["task_name"], r["status"], r["starts"]) for r in rows)
        want = Counter({(k, "succeeded", 2 if k == "flaky" else 1): v
                        for k, v in expected.items() if k != "mix"})
        return {"ok": got == want, "how": "procrastinate_jobs.status succeeded and one "
                "'started' event per attempt in procrastinate_events",
                "states": {" ".join(map(str, k)): v for k, v in got.items()}}

    def close(self) -> None:
        self.run(app.close_async())
        self.loop.close()
