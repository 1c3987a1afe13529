"""django-edgejobs, through its public API (``enqueue``, ``enqueue_many``) and ``runworker``.

Runs with the project's own ``.venv`` against the checkout this file is in. The queue's state
is read from the ``Job`` table (status counts, ``attempts``), the way its admin shows it.
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from harness import HERE, OUT, ROOT, Contender, ensure_database

TYPES = {k: f"bench.{k}" for k in ("noop", "mark", "quick", "sleep", "flaky", "tick")}
FINISHED = ["completed", "failed", "cancelled"]
CRON = {"bench-tick": {"cron": "* * * * * *", "type": "bench.tick", "payload": {}}}


class EdgeJobs(Contender):
    bulk_api = "enqueue_many"
    notes = ["runworker without --batch-size sizes claims by the jobs' run time "
             "(the concurrency at first, up to 50)",
             "cron: EDGEJOBS['CRON'], 6-field expression (every second), scheduler in runworker"]

    def __init__(self, store: str, batch_size: int | None = None, before: bool = False):
        """``before``: edgejobs from the tree in ``BENCH_BEFORE_ROOT`` (another commit,
        exported by ``peer_bench.py --baseline REF``), on databases of its own."""
        self.store = store
        self.batch_size = batch_size
        self.root = Path(os.environ["BENCH_BEFORE_ROOT"]) if before else ROOT
        suffix = "_before" if before else ""
        self.name = f"edgejobs-{'pg' if store == 'postgresql' else store}" + (
            f"-b{batch_size}" if batch_size else "")
        if store == "postgresql":
            url = ensure_database(f"bench_edgejobs{suffix}").replace("postgresql://",
                                                                      "postgres://")
        else:
            url = f"sqlite:///{OUT / f'edgejobs{suffix}.sqlite3'}"
        self.env = {
            "DATABASE_URL": url,
            "DJANGO_SETTINGS_MODULE": "edgebench.settings",
            "DJANGO_DEBUG": "0",
            "EDGEJOBS_LOG_LEVEL": "WARNING",
            "PYTHONPATH": os.pathsep.join([str(self.root), str(self.root / "testproject"),
                                          str(HERE)]),
        }
        os.environ.update(self.env)
        for path in reversed(self.env["PYTHONPATH"].split(os.pathsep)):
            sys.path.insert(0, path)
        import django

        django.setup()
        from django_edgejobs import enqueue, enqueue_many
        from django_edgejobs.models import Job

        self._enqueue, self._enqueue_many, self.Job = enqueue, enqueue_many, Job

    def version(self) -> str:
        import django_edgejobs

        where = os.path.relpath(django_edgejobs.__file__, ROOT)
        if not os.path.realpath(django_edgejobs.__file__).startswith(str(self.root)):
            raise RuntimeError(f"django_edgejobs came from {where}, not {self.root}")
        return f"{django_edgejobs.__version__} ({where})"

    def setup(self) -> None:
        from django.core.management import call_command

        call_command("migrate", verbosity=0)

    def reset(self) -> None:
        from django.apps import apps
        from django.core.management.color import no_style
        from django.db import connection

        tables = [m._meta.db_table for m in apps.get_app_config("django_edgejobs").get_models()]
        # In one transaction: SQLite checks the (deferred) foreign keys at the commit.
        connection.ops.execute_sql_flush(connection.ops.sql_flush(no_style(), tables))

    def analyze(self) -> None:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")

    def enqueue(self, kind: str, payload: dict) -> None:
        self._enqueue(TYPES[kind], payload)

    def enqueue_many(self, kind: str, payloads) -> None:
        self._enqueue_many([{"type": TYPES[kind], "payload": p} for p in payloads])

    def worker(self, concurrency: int, *, cron: bool = False) -> tuple[list[str], dict]:
        argv = [sys.executable, "-m", "django", "runworker", "--concurrency", str(concurrency)]
        if self.batch_size:
            argv += ["--batch-size", str(self.batch_size)]
        env = {**self.env, "EDGEJOBS_JSON": json.dumps({"CRON": CRON} if cron else {})}
        return argv, env

    def finished(self) -> int:
        return self.Job.objects.filter(status__in=FINISHED).exclude(type=TYPES["tick"]).count()

    def verify(self, expected: dict[str, int]) -> dict[str, Any]:
        jobs = self.Job.objects.exclude(type=TYPES["tick"])
        rows = Counter((t.removeprefix("bench."), s, a) for t, s, a in
                       jobs.values_list("type", "status", "attempts"))
        want = Counter()
        for kind, count in expected.items():
            if kind != "mix":
                want[(kind, "completed", 2 if kind == "flaky" else 1)] = count
        return {"ok": rows == want, "how": "Job rows: status completed, attempts 1 "
                "(2 for the jobs that fail once)", "states": {" ".join(map(str, k)): v
                                                             for k, v in rows.items()}}

    def queue_span(self) -> tuple[float, float]:
        from django.db.models import Max, Min

        span = self.Job.objects.exclude(type=TYPES["tick"]).aggregate(
            start=Min("started_at"), end=Max("completed_at"))
        return span["start"].timestamp(), span["end"].timestamp()

    def close(self) -> None:
        from django.db import connections

        connections.close_all()
