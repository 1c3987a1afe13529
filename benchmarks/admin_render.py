#!/usr/bin/env python
"""How long the admin takes to render with a big job table.

Fills a fresh database with ``--jobs`` jobs (a week of history: mostly completed, some
failed and cancelled, a backlog of pending and waiting jobs, jobs running on live workers)
and their events, rolls up the day (latency and finished counts, as every runworker's rollup
service does),
then renders the dashboard, the Failures page and the job list pages with Django's test
client and prints the median (and best) of ``--runs`` renders of each, as a Markdown table.
Run it at 100,000 and at 5,000,000 jobs: the dashboard must not grow with the table.
``--scale-to N`` (PostgreSQL) fills ``--jobs`` as above, then copies its finished jobs in SQL
(each copy a few seconds earlier, with its events) until the table holds N: 5,000,000 in
minutes instead of an hour of Python.

    .venv/bin/python benchmarks/admin_render.py                       # SQLite
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \\
        .venv/bin/python benchmarks/admin_render.py                   # PostgreSQL

It creates its own database (SQLite: testproject/.bench-admin.sqlite3; PostgreSQL: a database
named bench_admin; EDGEJOBS_TEST_DB renames it) and drops it at the end, unless ``--keep``;
``--reuse`` measures a kept one again. Run it alone: it measures wall time.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "testproject"), str(ROOT)]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "testproject.settings")
os.environ.setdefault("EDGEJOBS_TEST_DB", "bench-admin" if "postgres" not in os.environ.get(
    "DATABASE_URL", "") else "bench_admin")

TYPES = [("shop.send_email", "emails"), ("shop.webhook", "webhooks"),
         ("shop.daily_report", "reports"), ("shop.refund_approval", "default")]


def fill(n: int, seed: int = 1) -> dict[str, float]:
    from django.db import connection
    from django.utils import timezone

    from django_edgejobs.fingerprints import error_group
    from django_edgejobs.models import Job, JobEvent, Worker

    rng = random.Random(seed)
    now = timezone.now()
    week = 7 * 86400
    workers = [f"bench-{i}:{1000 + i}" for i in range(4)]
    Worker.objects.bulk_create([Worker(id=w, hostname=w.split(":")[0], pid=1000 + i,
                                       queues=[q for _, q in TYPES], concurrency=8)
                                for i, w in enumerate(workers)])
    started = time.perf_counter()
    batch_jobs: list = []
    batch_events: list = []
    events = 0

    def flush() -> None:
        nonlocal events
        Job.objects.bulk_create(batch_jobs, batch_size=2000)
        JobEvent.objects.bulk_create(batch_events, batch_size=5000)
        events += len(batch_events)
        batch_jobs.clear()
        batch_events.clear()

    for _ in range(n):
        type_, queue = rng.choice(TYPES)
        created = now - timedelta(seconds=rng.random() * week)
        wait = timedelta(seconds=rng.expovariate(1 / 0.5))
        run = timedelta(seconds=rng.expovariate(1 / 1.5))
        roll = rng.random()
        job = Job(id=uuid.UUID(int=rng.getrandbits(128), version=4), type=type_, queue=queue,
                  payload={"to": f"user{rng.randint(1, 10**6)}@example.com", "n": rng.random()},
                  created_at=created, run_at=created, updated_at=created,
                  tags=[f"user:{rng.randint(1, 5000)}"], max_attempts=3)
        kinds = ["added"]
        if roll < 0.90 or roll < 0.94:
            job.status = "completed" if roll < 0.90 else "failed"
            job.attempts = 1 if roll < 0.90 else 3
            job.started_at = created + wait
            job.completed_at = job.started_at + run
            if job.status == "completed":
                job.result = {"ok": True}
            else:
                job.last_error = "ConnectionError: partner answered 503"
                job.error_history = [{"attempt": 3, "error": job.last_error,
                                      "traceback": "Traceback...", "at": created.isoformat()}]
                job.error_group = error_group(job.last_error, job.error_history)  # as a worker
            kinds += ["processing", job.status]
        elif roll < 0.96:
            job.status, job.completed_at = "cancelled", created + wait
            kinds.append("cancelled")
        elif roll < 0.985:  # backlog: half due (some overdue), half later
            job.status = "pending"
            job.created_at = now - timedelta(seconds=rng.random() * 600)
            job.run_at = job.created_at + timedelta(seconds=rng.choice([0, 0, 3600]))
        elif roll < 0.995:
            job.status, job.run_at = "waiting", now + timedelta(hours=rng.randint(1, 48))
            kinds += ["processing", "waiting"]
        else:
            job.status, job.lease_owner = "processing", rng.choice(workers)
            job.created_at = job.run_at = now - timedelta(seconds=rng.random() * 60)
            job.started_at = job.run_at + wait
            job.attempts = 1
            kinds.append("processing")
        batch_jobs.append(job)
        batch_events.extend(JobEvent(job_id=job.id, type=k, created_at=job.created_at)
                            for k in kinds)
        if len(batch_jobs) >= 5000:
            flush()
    flush()
    filled = time.perf_counter() - started
    with connection.cursor() as cursor:  # a table in steady state has fresh statistics
        cursor.execute("VACUUM ANALYZE" if connection.vendor == "postgresql" else "ANALYZE")
    return {"fill_seconds": filled, "events": events, **roll_up()}


TIMES = ("run_at", "created_at", "started_at", "completed_at", "updated_at")


def scale_to(total: int) -> dict[str, float]:
    """Copy finished jobs (and their events) in SQL until the table holds ``total`` jobs."""
    from django.db import connection

    from django_edgejobs.models import Job, JobEvent

    if connection.vendor != "postgresql":
        raise SystemExit("--scale-to needs PostgreSQL (DATABASE_URL=postgres://...)")
    jobs, events = Job._meta.db_table, JobEvent._meta.db_table
    columns = [f.column for f in Job._meta.concrete_fields]
    started = time.perf_counter()
    have = Job.objects.count()
    finished = Job.objects.filter(status__in=["completed", "failed", "cancelled"]).count()
    copies = max(0, -(-(total - have) // finished))
    selected = ", ".join(
        "gen_random_uuid()" if c == "id"
        else f'"{c}" - (g * interval \'3 seconds\')' if c in TIMES
        else f'"{c}"' for c in columns)
    names = ", ".join(f'"{c}"' for c in columns)
    with connection.cursor() as cursor:
        # Copies are made of the rows filled in Python only (a copy of a copy compounds).
        cursor.execute(f'CREATE TEMP TABLE bench_orig AS SELECT id FROM "{jobs}" '
                       "WHERE status IN ('completed', 'failed', 'cancelled')")
        for g in range(1, copies + 1):
            limit = f"LIMIT {total - Job.objects.count()}" if g == copies else ""
            cursor.execute(
                f'WITH new AS (INSERT INTO "{jobs}" ({names}) '
                f'SELECT {selected} FROM "{jobs}" JOIN bench_orig USING (id), '
                f"(SELECT %s::int AS g) AS k {limit} "
                "RETURNING id, status, created_at, completed_at) "
                f'INSERT INTO "{events}" (job_id, type, data, created_at) '
                "SELECT id, e.type, '{}'::jsonb, "
                "CASE WHEN e.type = 'added' THEN created_at ELSE completed_at END FROM new, "
                "LATERAL (VALUES ('added'), ('processing'), (status)) AS e(type) "
                "WHERE status <> 'cancelled' OR e.type <> 'processing'", [g])
        cursor.execute("VACUUM ANALYZE")
    return {"scale_seconds": time.perf_counter() - started, "events": JobEvent.objects.count()}


def roll_up() -> dict[str, float]:
    """Roll up the last day's latency, pass after pass, as the rollup service would."""
    from django_edgejobs.services import rollup
    from django_edgejobs.store import get_store

    started = time.perf_counter()
    passes = 0
    while rollup.roll_due(get_store().db_now()) >= rollup.PER_PASS:
        passes += 1
    return {"rollup_seconds": time.perf_counter() - started, "rollup_passes": passes + 1}


def measure(runs: int) -> list[tuple[str, float, float]]:
    from django.contrib.auth.models import User
    from django.test import Client
    from django.urls import reverse

    from django_edgejobs.models import Job

    user = (User.objects.filter(username="bench").first()
            or User.objects.create_superuser("bench", "bench@example.com", "x"))
    client = Client()
    client.force_login(user)
    failed = Job.objects.filter(status="failed").order_by("-created_at").first()
    jobs = reverse("admin:django_edgejobs_job_changelist")
    pages = [
        ("dashboard", reverse("admin:django_edgejobs_dashboard")),
        ("failures, 24 h", reverse("admin:django_edgejobs_failures")),
        ("failures, 7 days", reverse("admin:django_edgejobs_failures") + "?since=7d"),
        ("job list", jobs),
        ("job list, status=failed", f"{jobs}?status=failed"),
        ("job list, queue+type", f"{jobs}?queue=emails&type=shop.send_email"),
        ("job list, overdue", f"{jobs}?attention=overdue"),
        ("job list, search a type", f"{jobs}?q=shop.webhook"),
        ("job list, search error text", f"{jobs}?q=error:partner+answered"),
        ("job list, a day (date hierarchy)",
         f"{jobs}?created_at__year={failed.created_at.year}&created_at__month="
         f"{failed.created_at.month}&created_at__day={failed.created_at.day}"),
        ("job detail", reverse("admin:django_edgejobs_job_change", args=[failed.pk])),
        ("event list", reverse("admin:django_edgejobs_jobevent_changelist")),
    ]
    out = []
    for name, url in pages:
        assert client.get(url).status_code == 200, url  # warm up (and check)
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            response = client.get(url)
            times.append(time.perf_counter() - t0)
            assert response.status_code == 200, url
        out.append((name, statistics.median(times), min(times)))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--scale-to", type=int, default=0, metavar="N",
                        help="PostgreSQL: copy the finished jobs in SQL up to N jobs")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--reuse", action="store_true",
                        help="measure a database kept by --keep, without filling it")
    args = parser.parse_args()

    import django

    django.setup()
    from django.db import connection
    from django.test.utils import (
        setup_databases,
        setup_test_environment,
        teardown_databases,
        teardown_test_environment,
    )

    setup_test_environment()
    if args.reuse:
        connection.settings_dict["NAME"] = connection.creation._get_test_db_name()
        connection.close()
        from django_edgejobs.models import Job, JobEvent

        config = None
        info = {"jobs": Job.objects.count(), "events": JobEvent.objects.count(),
                "fill_seconds": 0.0, **roll_up()}
    else:
        config = setup_databases(verbosity=0, interactive=False)
    try:
        if config is not None:
            info = {"jobs": args.jobs, **fill(args.jobs)}
            if args.scale_to > args.jobs:
                from django_edgejobs.models import LatencyMinute

                info.update(scale_to(args.scale_to), jobs=args.scale_to)
                LatencyMinute.objects.all().delete()  # the copies changed every minute
                info.update(roll_up())
        results = measure(args.runs)
    finally:
        if config is not None and not args.keep:
            teardown_databases(config, verbosity=0)
        teardown_test_environment()
    print(f"\n{connection.vendor}, {info['jobs']:,} jobs and {info['events']:,} events "
          f"(filled in {info['fill_seconds']:.0f} s"
          + (f", copied up in {info['scale_seconds']:.0f} s" if "scale_seconds" in info else "")
          + f"; the day's latency rolled up in "
          f"{info['rollup_seconds']:.1f} s, {info['rollup_passes']} passes); median (best) of "
          f"{args.runs} renders:\n")
    print("| page | median | best |")
    print("| --- | ---: | ---: |")
    for name, median, best in results:
        print(f"| {name} | {median * 1000:.0f} ms | {best * 1000:.0f} ms |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
