"""huey on Redis, on SQLite (``SqliteHuey``) and on PostgreSQL (``huey.contrib.sql_huey``,
peewee + psycopg2), run by ``huey_consumer -k thread -w N``.

Results are on, with ``store_none=True`` so that a task returning None leaves a result too:
the result store is the completion record. huey has no redelivery (a task leaves the queue
atomically when a consumer takes it), so N results for N tasks with an empty queue means each
ran once; retries re-enqueue the task under the same id. No bulk enqueue. Periodic tasks
have minute granularity (``crontab``).
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import marks
from harness import HERE, OUT, REDIS, REDIS_DB, Contender, ensure_database, pg_url
from huey import RedisHuey, SqliteHuey, crontab

STORE = os.environ.get("BENCH_HUEY_STORE", "redis")
OPTIONS = {"results": True, "store_none": True}
if STORE == "redis":
    huey = RedisHuey("bench", url=f"{REDIS}/{REDIS_DB}", **OPTIONS)
elif STORE == "sqlite":
    huey = SqliteHuey("bench", filename=str(OUT / "huey.sqlite3"), **OPTIONS)
else:
    from huey.contrib.sql_huey import SqlHuey

    huey = SqlHuey("bench", database=pg_url("bench_huey"), create_tables=False, **OPTIONS)


@huey.task()
def noop() -> None:
    return None


@huey.task()
def mark(t: Any = 0) -> None:
    marks.start("mark", {"t": t})


@huey.task()
def quick() -> None:
    marks.start("quick", {})
    marks.done("quick")


@huey.task()
def sleep() -> None:
    marks.start("sleep", {})
    time.sleep(marks.SLEEP_SECONDS)
    marks.done("sleep")


@huey.task(retries=1, retry_delay=0, context=True)
def flaky(task=None) -> None:
    marks.start("flaky", {})
    if task.retries == 1:  # retries left: 1 on the first attempt
        raise RuntimeError("first attempt fails")
    marks.done("flaky")


if os.environ.get("BENCH_CRON"):
    @huey.periodic_task(crontab())  # every minute: crontab's finest
    def tick() -> None:
        marks.record("tick")


TASKS = {"noop": noop, "mark": mark, "quick": quick, "sleep": sleep, "flaky": flaky}


class Huey(Contender):
    cron = "every minute"
    notes = ["consumer: huey_consumer -k thread -w N -q (defaults: poll 0.1 s backing off to 10 s "
             "on SQL storages; BRPOP on Redis)",
             "results on with store_none=True (the completion record)",
             "no bulk enqueue; periodic tasks by the minute (crontab)"]

    def __init__(self, store: str) -> None:
        if store != STORE:
            raise RuntimeError("BENCH_HUEY_STORE must be set before c_huey is imported")
        self.store = store
        if store == "postgresql":
            ensure_database("bench_huey")

    def version(self) -> str:
        import huey as package

        return package.__version__

    def setup(self) -> None:
        if STORE == "postgresql":
            huey.storage.create_tables()

    def reset(self) -> None:
        if STORE == "redis":
            huey.storage.conn.flushdb()  # only the benchmark's dedicated database
        else:
            huey.flush()

    def analyze(self) -> None:
        if STORE == "sqlite":
            huey.storage.sql("ANALYZE", commit=True)
        elif STORE == "postgresql":
            huey.storage.database.execute_sql("ANALYZE")

    def enqueue(self, kind: str, payload: dict) -> None:
        TASKS[kind](**payload)

    def seed(self, jobs) -> None:
        """Untimed set-up without a bulk API: the messages ``enqueue`` writes (huey's own
        serialisation), in one transaction or pipeline instead of one per task."""
        data = [huey.serialize_task(TASKS[kind].s(**payload)) for kind, payload in jobs]
        storage = huey.storage
        if STORE == "redis":
            pipe = storage.conn.pipeline(transaction=False)
            for item in data:
                pipe.lpush(storage.queue_key, item)
            pipe.execute()
        elif STORE == "sqlite":
            with storage.db(commit=True) as curs:
                curs.executemany("insert into task (queue, data, priority) values (?, ?, 0)",
                                 [(storage.name, storage.to_blob(d)) for d in data])
        else:
            with storage.database.atomic():
                for start in range(0, len(data), 1000):
                    storage.Task.insert_many(
                        [{"queue": storage.name, "data": d, "priority": 0}
                         for d in data[start:start + 1000]]).execute()

    def worker(self, concurrency: int, *, cron: bool = False) -> tuple[list[str], dict]:
        argv = [os.path.join(os.path.dirname(sys.executable), "huey_consumer"), "c_huey.huey",
                "-k", "thread", "-w", str(concurrency), "-q"]
        return argv, {"PYTHONPATH": str(HERE), "BENCH_HUEY_STORE": STORE,
                      **({"BENCH_CRON": "1"} if cron else {})}

    def finished(self) -> int:
        return huey.result_count()

    def verify(self, expected: dict[str, int]) -> dict[str, Any]:
        from huey.exceptions import TaskException

        total = sum(v for k, v in expected.items() if k != "mix")
        errors = 0
        for value in huey.all_results().values():
            if isinstance(huey.serializer.deserialize(value), TaskException):
                errors += 1
        results, pending = huey.result_count(), huey.pending_count()
        return {"ok": results == total and errors == 0 and pending == 0,
                "how": "one stored result per task id (store_none=True), none an error; "
                       "queue empty (huey never redelivers a task)",
                "states": {"results": results, "errors": errors, "pending": pending}}

    def close(self) -> None:
        if STORE == "postgresql":
            huey.storage.database.close()
        elif STORE == "sqlite":
            huey.storage.close()
