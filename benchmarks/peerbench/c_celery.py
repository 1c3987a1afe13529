"""Celery with a Redis broker (db BENCH_REDIS_DB) and the Redis result backend (the next db).

One worker process: ``--pool threads -c N`` (edgejobs also runs jobs on threads), with mingle
and gossip off (they only slow start-up; nothing here uses them). The queue's state: one
result per task in the result backend (a SUCCESS key each), and the workers' own counters
(``inspect().stats()['total']``) for how many times tasks ran. Cron: ``celery beat`` (a
separate process) with a one-second schedule.
"""

from __future__ import annotations

import itertools
import json
import sys
import time
from collections import Counter
from typing import Any

import marks
import redis
from celery import Celery, group
from harness import HERE, OUT, REDIS, REDIS_DB, Contender, Workers

BROKER, RESULTS = f"{REDIS}/{REDIS_DB}", f"{REDIS}/{REDIS_DB + 1}"
app = Celery("bench", broker=BROKER, backend=RESULTS)
app.conf.update(task_serializer="json", result_serializer="json", accept_content=["json"],
                worker_hijack_root_logger=True, broker_connection_retry_on_startup=True,
                beat_schedule={"tick": {"task": "tick", "schedule": 1.0}})


@app.task(name="noop")
def noop() -> None:
    return None


@app.task(name="mark")
def mark(t: Any = 0) -> None:
    marks.start("mark", {"t": t})


@app.task(name="quick")
def quick() -> None:
    marks.start("quick", {})
    marks.done("quick")


@app.task(name="sleep")
def sleep() -> None:
    marks.start("sleep", {})
    time.sleep(marks.SLEEP_SECONDS)
    marks.done("sleep")


@app.task(name="flaky", bind=True, max_retries=1)
def flaky(self) -> None:
    marks.start("flaky", {})
    if self.request.retries == 0:
        raise self.retry(countdown=0, exc=RuntimeError("first attempt fails"))
    marks.done("flaky")


@app.task(name="tick", ignore_result=True)
def tick() -> None:
    marks.record("tick")


TASKS = {"noop": noop, "mark": mark, "quick": quick, "sleep": sleep, "flaky": flaky}


class CeleryContender(Contender):
    name = "celery-redis"
    store = "redis"
    bulk_api = "group(...).apply_async()"
    notes = ["worker: celery worker --pool threads -c N --without-mingle --without-gossip",
             "Redis broker and result backend (results are the completion record)",
             "cron: celery beat (one more process), schedule 1.0 s"]

    def __init__(self) -> None:
        self.broker = redis.Redis.from_url(BROKER)
        self.results = redis.Redis.from_url(RESULTS)
        self.names = itertools.count(1)

    def version(self) -> str:
        import celery

        return f"{celery.__version__} (Redis {self.broker.info()['redis_version']})"

    def reset(self) -> None:
        self.broker.flushdb()  # only the benchmark's two dedicated databases
        self.results.flushdb()

    def enqueue(self, kind: str, payload: dict) -> None:
        TASKS[kind].delay(**payload)

    def enqueue_many(self, kind: str, payloads) -> None:
        group(TASKS[kind].s(**p) for p in payloads).apply_async()

    def worker(self, concurrency: int, *, cron: bool = False) -> tuple[list[str], dict]:
        argv = [sys.executable, "-m", "celery", "-A", "c_celery", "worker", "--pool", "threads",
                "-c", str(concurrency), "--without-mingle", "--without-gossip", "-l", "WARNING",
                "-n", f"bench{next(self.names)}@%h"]
        return argv, {"PYTHONPATH": str(HERE)}

    def extra_processes(self, *, cron: bool) -> list[tuple[list[str], dict]]:
        if not cron:
            return []
        return [([sys.executable, "-m", "celery", "-A", "c_celery", "beat", "-l", "WARNING",
                  "-s", str(OUT / "celerybeat-schedule")], {"PYTHONPATH": str(HERE)})]

    def finished(self) -> int:
        return self.results.dbsize()

    def before_stop(self, workers: Workers) -> dict[str, Any]:
        stats = app.control.inspect(timeout=2.0).stats() or {}
        totals = Counter()
        for worker in stats.values():
            totals.update(worker.get("total", {}))
        self.totals = totals
        return {"executions": dict(totals)}

    def verify(self, expected: dict[str, int]) -> dict[str, Any]:
        states = Counter()
        keys = list(self.results.scan_iter("celery-task-meta-*", count=1000))
        for start in range(0, len(keys), 1000):
            for value in self.results.mget(keys[start:start + 1000]):
                states[json.loads(value)["status"]] += 1
        want_runs = {k: (2 if k == "flaky" else 1) * v for k, v in expected.items() if k != "mix"}
        total = sum(v for k, v in expected.items() if k != "mix")
        runs = {k: v for k, v in self.totals.items() if k != "tick"}
        return {"ok": states == Counter({"SUCCESS": total}) and runs == want_runs
                and self.broker.llen("celery") == 0,
                "how": "one SUCCESS result per task in the result backend; workers' "
                       "stats()['total'] per task name = executions (2 for the jobs retried "
                       "once); broker queue empty",
                "states": dict(states)}

    def close(self) -> None:
        self.broker.close()
        self.results.close()
