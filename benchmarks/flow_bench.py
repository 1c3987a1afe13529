"""Flow control's cost, in one run (issue 18): no-op drains by real ``runworker`` processes of

- ``plain``: jobs without limits (the claim every queue without limits runs);
- ``key10``: jobs that all share one concurrency key with limit 10;
- ``rate1000``: jobs under a ``1000/s`` rate limit (the drain cannot beat 1,000/s).

    DJANGO_DEBUG=0 .venv/bin/python benchmarks/flow_bench.py [--reps 3] [--workers 2]
        [--concurrency 4] [--sqlite]

Rates are timed from the first claim (the jobs' ``processing`` events) to the last
``completed_at`` (the database's clock), the median of the repetitions with min-max. For the
rate case it also reports the most claims found in any one-second window (at most 1,000 if
the limit held). Not a test: nothing asserts
on time. Plain drains against an older commit are ``peer_bench.py --baseline REF``'s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / ".out"
PG = "postgres://postgres@127.0.0.1:5432/bench_flow"


def setup(sqlite: bool) -> dict[str, str]:
    OUT.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{OUT / 'flow.sqlite3'}" if sqlite else PG
    env = {"DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "testproject.settings",
           "DJANGO_DEBUG": "0", "EDGEJOBS_LOG_LEVEL": "WARNING"}
    os.environ.update(env)
    sys.path[:0] = [str(ROOT), str(ROOT / "testproject")]
    if not sqlite:
        import psycopg

        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres",
                             autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = 'bench_flow'"
                                ).fetchone():
                conn.execute("CREATE DATABASE bench_flow")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return env


def reset() -> None:
    from django.apps import apps
    from django.core.management.color import no_style
    from django.db import connection

    tables = [m._meta.db_table for m in apps.get_app_config("django_edgejobs").get_models()]
    connection.ops.execute_sql_flush(connection.ops.sql_flush(no_style(), tables))


def drain(env: dict[str, str], items: list[dict], workers: int, concurrency: int) -> dict:
    from django.db import connection
    from django.db.models import Max

    from django_edgejobs import enqueue_many
    from django_edgejobs.models import Job, JobEvent

    reset()
    for start in range(0, len(items), 5000):
        enqueue_many(items[start:start + 5000])
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    argv = [sys.executable, str(ROOT / "testproject" / "manage.py"), "runworker",
            "--concurrency", str(concurrency), "--no-scheduler"]
    procs = [subprocess.Popen(argv, env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL) for _ in range(workers)]
    try:
        deadline = time.monotonic() + 900
        while Job.objects.filter(status="completed").count() < len(items):
            if time.monotonic() > deadline:
                raise RuntimeError("drain timed out")
            time.sleep(0.2)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(60)
    # Claims: the processing events (started_at becomes the handler's begin once done).
    starts = sorted(JobEvent.objects.filter(type="processing")
                    .values_list("created_at", flat=True))
    end = Job.objects.aggregate(end=Max("completed_at"))["end"]
    seconds = (end - starts[0]).total_seconds()
    peak, j = 0, 0
    for i, at in enumerate(starts):  # the most starts in any window (at - 1 s, at]
        while (at - starts[j]).total_seconds() >= 1.0:
            j += 1
        peak = max(peak, i - j + 1)
    return {"rate": len(items) / seconds, "peak_per_s": peak,
            "once": not Job.objects.exclude(attempts=1).exists()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--sqlite", action="store_true")
    args = parser.parse_args()
    env = setup(args.sqlite)
    cases = {
        "plain": [{"type": "qa.noop"} for _ in range(20_000)],
        "key10": [{"type": "qa.noop", "concurrency_key": "shared", "concurrency_limit": 10}
                  for _ in range(10_000)],
        "rate1000": [{"type": "qa.noop", "rate_limit": "1000/s"} for _ in range(5_000)],
    }
    results: dict[str, list[dict]] = {name: [] for name in cases}
    for rep in range(args.reps):
        for name, items in cases.items():
            result = drain(env, items, args.workers, args.concurrency)
            results[name].append(result)
            print(f"[{rep + 1}/{args.reps}] {name:9} {result['rate']:8,.0f} jobs/s  "
                  f"peak {result['peak_per_s']:,}/s  each once: {result['once']}", flush=True)
    print(f"\n{'sqlite' if args.sqlite else 'postgresql'}, {args.workers} workers x "
          f"{args.concurrency} threads, median (min-max) of {args.reps}:")
    plain = statistics.median(r["rate"] for r in results["plain"])
    for name, rows in results.items():
        rates = [r["rate"] for r in rows]
        med = statistics.median(rates)
        print(f"  {name:9} {med:8,.0f} jobs/s ({min(rates):,.0f}-{max(rates):,.0f}), "
              f"{med / plain:.2f} of plain; most starts in one second "
              f"{max(r['peak_per_s'] for r in rows):,}; every job once: "
              f"{all(r['once'] for r in rows)}")


if __name__ == "__main__":
    main()
