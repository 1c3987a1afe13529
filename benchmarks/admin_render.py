#!/usr/bin/env python
"""How long the admin takes to render with a big job table.

Fills a fresh database with ``--jobs`` jobs (a week of history: mostly completed, some
failed and cancelled, a backlog of pending and waiting jobs, jobs running on live workers)
and their events, then renders the dashboard and the job list pages with Django's test client
and prints the median (and best) of ``--runs`` renders of each, as a Markdown table.

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
    return {"fill_seconds": filled, "events": events}


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
        ("job list", jobs),
        ("job list, status=failed", f"{jobs}?status=failed"),
        ("job list, queue+type", f"{jobs}?queue=emails&type=shop.send_email"),
        ("job list, overdue", f"{jobs}?attention=overdue"),
        ("job list, search a type", f"{jobs}?q=shop.webhook"),
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
                "fill_seconds": 0.0}
    else:
        config = setup_databases(verbosity=0, interactive=False)
    try:
        if config is not None:
            info = {"jobs": args.jobs, **fill(args.jobs)}
        results = measure(args.runs)
    finally:
        if config is not None and not args.keep:
            teardown_databases(config, verbosity=0)
        teardown_test_environment()
    print(f"\n{connection.vendor}, {info['jobs']:,} jobs and {info['events']:,} events "
          f"(filled in {info['fill_seconds']:.0f} s); median (best) of {args.runs} renders:\n")
    print("| page | median | best |")
    print("| --- | ---: | ---: |")
    for name, median, best in results:
        print(f"| {name} | {median * 1000:.0f} ms | {best * 1000:.0f} ms |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
