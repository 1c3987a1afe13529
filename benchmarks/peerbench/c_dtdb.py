"""django-tasks-db: Django's Task API (``django.tasks``) on its database backend, run by its
``db_worker`` command, on PostgreSQL or SQLite.

``db_worker`` runs one task at a time per process (no threads option), so "concurrency 4" is
four processes. The Task API has no retries (a failing task is FAILED for good), no periodic
tasks and no bulk enqueue. The queue's state: ``DBTaskResult.status``, and ``worker_ids`` (one
entry per claim) for exactly once.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from typing import Any

import marks
from harness import HERE, OUT, Contender, ensure_database

if "BENCH_DTDB_URL" not in os.environ:  # the driver; workers inherit it
    os.environ["BENCH_DTDB_URL"] = (
        "sqlite://" + str(OUT / "dtdb.sqlite3") if os.environ.get("BENCH_DTDB_STORE") == "sqlite"
        else "postgresql://postgres@127.0.0.1:5432/bench_dtdb")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dtdb_settings")

import django

django.setup()

from django.tasks import task  # noqa: E402


@task
def noop() -> None:
    return None


@task
def mark(t: Any = 0) -> None:
    marks.start("mark", {"t": t})


@task
def quick() -> None:
    marks.start("quick", {})
    marks.done("quick")


@task
def sleep() -> None:
    import time

    marks.start("sleep", {})
    time.sleep(marks.SLEEP_SECONDS)
    marks.done("sleep")


@task
def flaky() -> None:
    marks.start("flaky", {})
    raise RuntimeError("first attempt fails (and there is no second: no retries)")


TASKS = {"noop": noop, "mark": mark, "quick": quick, "sleep": sleep, "flaky": flaky}


class DjangoTasksDB(Contender):
    concurrency_in_process = False
    retries = False
    cron = None
    notes = ["db_worker runs one task at a time: c=4 is 4 db_worker processes",
             "no retries, no periodic tasks, no bulk enqueue in the Task API",
             "db_worker --verbosity 0 (no per-task log lines), default 1 s poll interval"]

    def __init__(self, store: str) -> None:
        self.store = store
        want = "sqlite" if store == "sqlite" else "postgresql"
        if not os.environ["BENCH_DTDB_URL"].startswith(want):
            raise RuntimeError("BENCH_DTDB_STORE must be set before c_dtdb is imported")
        if store == "postgresql":
            ensure_database("bench_dtdb")
        from django_tasks_db.models import DBTaskResult

        self.model = DBTaskResult

    def version(self) -> str:
        from importlib.metadata import version

        return f"{version('django-tasks-db')} (Django {django.get_version()})"

    def setup(self) -> None:
        from django.core.management import call_command

        call_command("migrate", verbosity=0)

    def reset(self) -> None:
        from django.core.management.color import no_style
        from django.db import connection

        connection.ops.execute_sql_flush(
            connection.ops.sql_flush(no_style(), [self.model._meta.db_table]))

    def analyze(self) -> None:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")

    def enqueue(self, kind: str, payload: dict) -> None:
        TASKS[kind].enqueue(**payload)

    def seed(self, jobs) -> None:
        """Untimed set-up without a bulk API: the rows ``enqueue`` writes, in one bulk_create
        per 5,000 (an ``enqueue`` per job would take longer than the drain)."""
        from django.utils.json import normalize_json
        from django_tasks_db.models import get_date_max

        rows = []
        for kind, payload in jobs:
            t = TASKS[kind]
            rows.append(self.model(
                args_kwargs=normalize_json({"args": [], "kwargs": payload}),
                priority=t.priority, task_path=t.module_path, queue_name=t.queue_name,
                run_after=get_date_max(), backend_name=t.backend))
        self.model.objects.bulk_create(rows[:1])  # the mark first (ordered by enqueued_at)
        self.model.objects.bulk_create(rows[1:], batch_size=5000)

    def worker(self, concurrency: int, *, cron: bool = False) -> tuple[list[str], dict]:
        assert concurrency == 1
        argv = [sys.executable, "-m", "django", "db_worker", "--verbosity", "0", "--no-reload"]
        return argv, {"PYTHONPATH": str(HERE), "BENCH_DTDB_URL": os.environ["BENCH_DTDB_URL"],
                      "DJANGO_SETTINGS_MODULE": "dtdb_settings"}

    def finished(self) -> int:
        return self.model.objects.finished().count()

    def verify(self, expected: dict[str, int]) -> dict[str, Any]:
        got = Counter((path.rsplit(".", 1)[1], status, len(ids)) for path, status, ids in
                      self.model.objects.values_list("task_path", "status", "worker_ids"))
        want = Counter({(k, "FAILED" if k == "flaky" else "SUCCESSFUL", 1): v
                        for k, v in expected.items() if k != "mix"})
        return {"ok": got == want, "how": "DBTaskResult.status SUCCESSFUL (FAILED for the "
                "jobs that fail once: no retries) and one worker id each (one claim)",
                "states": {" ".join(map(str, k)): v for k, v in got.items()}}

    def close(self) -> None:
        from django.db import connections

        connections.close_all()
