"""Workflows' cost (issue 23): no-op drains by real ``runworker`` processes of

- ``chord``: a fan-out/fan-in, ``chord([sig("qa.noop")] * N, sig("qa.noop"))`` (a batch of
  N jobs with an ``on_success`` callback that depends on all of them): N + 1 jobs;
- ``plain``: the same N no-op jobs from one ``enqueue_many`` (no batch, no dependencies);
- ``dag``: three levels from one ``enqueue_many`` with positional ``depends_on``: R roots,
  C children of each root (``depends_on=[root]``), and one final job that depends on all
  R x C children: R + R x C + 1 jobs (default 100 + 1,000 + 1).

    DJANGO_DEBUG=0 .venv/bin/python benchmarks/workflow_bench.py [--reps 3] [--workers 2]
        [--concurrency 4] [--jobs 10000] [--dag 100x10] [--sqlite] [--write]

PostgreSQL always (database ``bench_workflow`` on 127.0.0.1:5432, created and marked as this
script's on first use, never dropped); ``--sqlite`` runs the same cases on SQLite too
(``benchmarks/.out/workflow.sqlite3``). Each repetition runs the three cases back to back in
an order that rotates, so ``chord`` and ``plain`` see the same machine state and their ratio
is taken within one repetition. Each case starts from empty tables, enqueues (timed, the
whole call), runs ``ANALYZE``, then starts the worker processes (testproject settings,
``runworker --concurrency C --no-scheduler``) and stops them once every job has finished.

Times come from the jobs' own columns (the database's clock): the drain is the first
``started_at`` to the last ``completed_at`` (the callback's, or the final job's); the
callback delay is the last member's ``completed_at`` to the callback's ``started_at``, split
by its events into "made due" (its ``resumed`` event) and "claimed" (its ``processing`` event).
Figures are the median of the repetitions with min-max; ratios chord/plain per repetition.

Not a test: nothing asserts on time. It checks what must hold whatever the timing and exits 1
(without ``--write``) when one fails: every job completed, the callback (and the DAG's final
job) ran exactly once (attempts == 1, one ``processing`` event), every dependency edge was
resolved and no dependent started before its dependency completed, the batch is finished
with N completed and the callback's payload carries those counts.

``--write`` replaces the part of docs/benchmarks.md between ``<!-- workflow-bench:begin -->``
and ``<!-- workflow-bench:end -->`` (the section "Workflows: fan-out/fan-in", added at the end
when missing). ``peer_bench.py`` rewrites that page whole, so ``make bench`` runs this after it.
"""
# ruff: noqa: RUF001, RUF002, RUF003 (typography: ×, –, → in the report)

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flow_bench import reset  # empties every table of the app, as flow_bench's drains do

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / ".out"
DOC = ROOT / "docs" / "benchmarks.md"
PG_SERVER = "postgresql://postgres@127.0.0.1:5432"
DB_NAME = "bench_workflow"
DB_COMMENT = "created by django-edgejobs benchmarks/workflow_bench.py"
BEGIN, END = "<!-- workflow-bench:begin -->", "<!-- workflow-bench:end -->"
HEADING = "## Workflows: fan-out/fan-in"
CASES = ("chord", "plain", "dag")


# --- the measuring process (one database) -----------------------------------------------------

def ensure_database() -> str:
    """``bench_workflow``, created if missing; one this script did not create is refused."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        row = conn.execute("SELECT shobj_description(oid, 'pg_database') FROM pg_database "
                           "WHERE datname = %s", [DB_NAME]).fetchone()
        if row is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DB_NAME)))
            conn.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(
                sql.Identifier(DB_NAME), sql.Literal(DB_COMMENT)))
        elif row[0] != DB_COMMENT:
            raise SystemExit(f"database {DB_NAME!r} exists but was not created by this script "
                             "(no marker comment): refusing to use it")
    return f"postgres://postgres@127.0.0.1:5432/{DB_NAME}"


def setup(database: str) -> dict[str, str]:
    OUT.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{OUT / 'workflow.sqlite3'}" if database == "sqlite" else ensure_database()
    env = {"DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "testproject.settings",
           "DJANGO_DEBUG": "0", "EDGEJOBS_LOG_LEVEL": "WARNING"}
    os.environ.update(env)
    os.environ.pop("EDGEJOBS_JSON", None)  # the workers run at the project's settings
    sys.path[:0] = [str(ROOT), str(ROOT / "testproject")]
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return env


def run_workers(env: dict[str, str], workers: int, concurrency: int, timeout: float) -> None:
    """Start the worker processes, wait until no job is left unfinished, stop them."""
    from django_edgejobs.models import Job
    from django_edgejobs.models.job import FINISHED_STATUSES

    argv = [sys.executable, str(ROOT / "testproject" / "manage.py"), "runworker",
            "--concurrency", str(concurrency), "--no-scheduler"]
    procs = [subprocess.Popen(argv, env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL) for _ in range(workers)]
    try:
        deadline = time.monotonic() + timeout
        while Job.objects.exclude(status__in=FINISHED_STATUSES).exists():
            if time.monotonic() > deadline:
                raise RuntimeError(f"drain timed out after {timeout:.0f} s")
            if any(p.poll() is not None for p in procs):
                raise RuntimeError("a worker process exited during the drain")
            time.sleep(0.2)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(60)


def ms(a: datetime, b: datetime) -> float:
    """b - a in milliseconds."""
    return (b - a).total_seconds() * 1000


def common(total: int, problems: list[str]) -> dict[str, Any]:
    """The drain's figures and the checks every case shares."""
    from django.db.models import Count, F, Max, Min

    from django_edgejobs.models import Job, JobDependency, JobEvent

    agg = Job.objects.aggregate(n=Count("id"), first=Min("started_at"), end=Max("completed_at"))
    committed = JobEvent.objects.filter(type="completed").aggregate(at=Max("created_at"))["at"]
    by_status = dict(Job.objects.values("status").annotate(n=Count("id"))
                     .values_list("status", "n"))
    if agg["n"] != total or by_status.get("completed", 0) != total:
        problems.append(f"{total:,} jobs expected completed, found {by_status}")
    retried = Job.objects.exclude(attempts=1).count()
    if retried:
        problems.append(f"{retried} job(s) ran more than once (attempts != 1)")
    if JobDependency.objects.filter(resolved=False).exists():
        problems.append("dependency edges left unresolved")
    early = JobDependency.objects.filter(job__started_at__lt=F("depends_on__completed_at"))
    if early.exists():
        problems.append(f"{early.count()} dependent(s) started before a dependency completed")
    seconds = (agg["end"] - agg["first"]).total_seconds()
    return {"jobs": total, "drain_s": seconds, "rate": total / seconds,
            "committed_s": (committed - agg["first"]).total_seconds()}


def fan_in(job_id: Any, members: Any, problems: list[str], name: str) -> dict[str, float]:
    """The job that waits for ``members``: ran once; its delay after the last of them."""
    from django.db.models import Max

    from django_edgejobs.models import Job, JobEvent

    job = Job.objects.get(id=job_id)
    processing = list(JobEvent.objects.filter(job_id=job_id, type="processing")
                      .values_list("created_at", flat=True))
    due = list(JobEvent.objects.filter(job_id=job_id, type="resumed")
               .values_list("created_at", flat=True))
    if job.status != "completed" or job.attempts != 1 or len(processing) != 1 or len(due) != 1:
        problems.append(f"the {name} ran {job.attempts} time(s), status {job.status}, "
                        f"{len(processing)} processing and {len(due)} resumed event(s)")
    last = members.aggregate(at=Max("completed_at"))["at"]
    committed = JobEvent.objects.filter(type="completed", job_id__in=members.values("id")
                                        ).aggregate(at=Max("created_at"))["at"]
    out = {"members_s": (last - Job.objects.exclude(id=job_id).earliest("started_at")
                         .started_at).total_seconds(),
           "delay_ms": ms(last, job.started_at), "committed_ms": ms(last, committed)}
    if due and processing:
        out.update(due_ms=ms(last, due[0]), claimed_ms=ms(last, processing[0]))
    return out


def case_chord(n: int, problems: list[str]) -> tuple[float, dict[str, Any]]:
    from django_edgejobs import chord, get_batch, sig
    from django_edgejobs.models import Job

    header = [sig("qa.noop") for _ in range(n)]
    body = sig("qa.noop", {"role": "callback"})
    began = time.perf_counter()
    batch = chord(header, body, description="workflow_bench").enqueue()
    enqueue_s = time.perf_counter() - began

    def measure() -> dict[str, Any]:
        out = common(n + 1, problems)
        callback = batch.on_success_job
        out.update(fan_in(callback, Job.objects.filter(batch_id=batch.id), problems,
                          "callback"))
        status = get_batch(batch.id)
        if (status.status, status.total, status.completed) != ("finished", n, n):
            problems.append(f"batch {status.status}: {status.completed}/{status.total} "
                            "completed")
        counts = (Job.objects.get(id=callback).payload or {}).get("batch") or {}
        if (counts.get("completed"), counts.get("pending")) != (n, 0):
            problems.append(f"the callback's payload has batch counts {counts}")
        return out

    return enqueue_s, measure


def case_plain(n: int, problems: list[str]) -> tuple[float, Any]:
    from django_edgejobs import enqueue_many

    items = [{"type": "qa.noop"} for _ in range(n)]
    began = time.perf_counter()
    enqueue_many(items)
    enqueue_s = time.perf_counter() - began
    return enqueue_s, lambda: common(n, problems)


def case_dag(roots: int, children: int, problems: list[str]) -> tuple[float, Any]:
    from django_edgejobs import enqueue_many
    from django_edgejobs.models import Job, JobDependency, JobEvent

    items: list[dict[str, Any]] = [{"type": "qa.noop", "payload": {"level": 0}}
                                   for _ in range(roots)]
    for root in range(roots):
        items += [{"type": "qa.noop", "payload": {"level": 1}, "depends_on": [root]}
                  for _ in range(children)]
    items.append({"type": "qa.noop", "payload": {"level": 2},
                  "depends_on": list(range(roots, len(items)))})
    began = time.perf_counter()
    jobs = enqueue_many(items)
    enqueue_s = time.perf_counter() - began
    final = jobs[-1].id

    def measure() -> dict[str, Any]:
        out = common(len(items), problems)
        out.update(fan_in(final, Job.objects.filter(payload__level=1), problems,
                          "final job"))
        # Each child: its root's completion to its own start, and to its being made due.
        edges = list(JobDependency.objects.exclude(job_id=final).values_list(
            "job_id", "job__started_at", "depends_on__completed_at"))
        due = dict(JobEvent.objects.filter(type="resumed", job_id__in=[e[0] for e in edges])
                   .values_list("job_id", "created_at"))
        if len(edges) != roots * children or len(due) != len(edges):
            problems.append(f"{len(edges)} root->child edges and {len(due)} children made "
                            f"due, {roots * children} expected")
            return out
        for key, values in (("child", [ms(done, start) for _, start, done in edges]),
                            ("child_due", [ms(done, due[j]) for j, _, done in edges])):
            values.sort()
            out.update({f"{key}_p50_ms": statistics.median(values),
                        f"{key}_p95_ms": values[int(0.95 * (len(values) - 1))],
                        f"{key}_max_ms": values[-1]})
        return out

    return enqueue_s, measure


def child_main(args: argparse.Namespace) -> None:
    """One database: every case, ``--reps`` times, interleaved; results as JSON."""
    env = setup(args.child)
    from django.db import connection

    roots, children = args.dag
    results: dict[str, list[dict[str, Any]]] = {case: [] for case in CASES}
    problems: list[str] = []
    for rep in range(args.reps):
        shift = rep % len(CASES)
        for case in CASES[shift:] + CASES[:shift]:
            reset()
            found: list[str] = []
            if case == "chord":
                enqueue_s, measure = case_chord(args.jobs, found)
            elif case == "plain":
                enqueue_s, measure = case_plain(args.jobs, found)
            else:
                enqueue_s, measure = case_dag(roots, children, found)
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE")
            began = time.monotonic()
            run_workers(env, args.workers, args.concurrency, args.timeout)
            result = {"enqueue_s": enqueue_s, **measure(),
                      "wall_s": round(time.monotonic() - began, 1), "rep": rep}
            results[case].append(result)
            problems += [f"{args.child} {case} rep {rep + 1}: {p}" for p in found]
            delay = (f"  last dependency -> start {result['delay_ms']:,.0f} ms"
                     if "delay_ms" in result else "")
            print(f"[{args.child} {rep + 1}/{args.reps}] {case:5} enqueue "
                  f"{result['enqueue_s']:6.2f} s  drain {result['drain_s']:6.2f} s  "
                  f"{result['rate']:7,.0f} jobs/s{delay}"
                  f"{'  CHECK FAILED: ' + '; '.join(found) if found else ''}", flush=True)
    with connection.cursor() as cursor:
        cursor.execute("SELECT sqlite_version()" if args.child == "sqlite"
                       else "SHOW server_version")
        version = cursor.fetchone()[0]
    Path(args.result).write_text(json.dumps(
        {"database": args.child, "version": version, "results": results,
         "problems": problems}, indent=1))


# --- the orchestrating process ----------------------------------------------------------------

def machine() -> dict[str, Any]:
    import psycopg

    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with psycopg.connect(f"{PG_SERVER}/postgres") as conn:
        pg = conn.execute("SHOW server_version").fetchone()[0]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip() or "?"
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    return {"nproc": len(os.sched_getaffinity(0)), "cpu": cpu, "postgresql": pg,
            "python": platform.python_version(), "kernel": platform.release(),
            "commit": commit + (" (with uncommitted changes)" if dirty else ""),
            "started": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "load_start": os.getloadavg()}


def spread(values: list[float], fmt: str) -> str:
    """median (min–max)"""
    if not values:
        return "—"
    med = statistics.median(values)
    if len(values) == 1:
        return format(med, fmt)
    return f"{med:{fmt}} ({min(values):{fmt}}–{max(values):{fmt}})"


def table(run: dict[str, Any], args: argparse.Namespace) -> list[str]:
    r = run["results"]
    n = args.jobs
    roots, children = args.dag

    def cell(case: str, key: str, fmt: str) -> str:
        return spread([x[key] for x in r[case] if key in x], fmt)

    def ratio(key: str) -> str:
        return "**" + spread([c[key] / p[key] for c, p in
                              zip(r["chord"], r["plain"], strict=True)], ".2f") + "×**"

    def row(case: str, name: str, jobs: int) -> str:
        return (f"| {name} | {jobs:,} | {cell(case, 'enqueue_s', '.2f')} | "
                f"{cell(case, 'drain_s', '.2f')} | {cell(case, 'rate', ',.0f')} | "
                f"{cell(case, 'committed_s', '.2f')} | {cell(case, 'delay_ms', ',.0f')} |")

    lines = [
        "| case | jobs | enqueue (s) | drain (s) | jobs/s | drain to the last commit (s) | "
        "last dependency done → waiting job started (ms) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        row("chord", f"fan-out/fan-in: `chord` of {n:,} + callback", n + 1),
        row("plain", f"plain `enqueue_many` of {n:,}", n),
        f"| **ratio fan-out/fan-in ÷ plain** (per repetition) | | {ratio('enqueue_s')} | "
        f"{ratio('drain_s')} | {ratio('rate')} | {ratio('committed_s')} | |",
        row("dag", f"3-level DAG: {roots:,} roots → {roots * children:,} children → 1",
            roots + roots * children + 1),
        "",
        "Where the wait goes: ms after the last dependency's handler ended (its "
        "`completed_at`), median (min–max):",
        "",
        "| waiting job | last dependency's completion committed | made due (`resumed` event) "
        "| claimed (`processing` event) | handler started | its dependencies' own drain (s) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for case, name in (("chord", "the chord's callback"), ("dag", "the DAG's final job")):
        lines.append(f"| {name} | {cell(case, 'committed_ms', ',.1f')} | "
                     f"{cell(case, 'due_ms', ',.1f')} | {cell(case, 'claimed_ms', ',.1f')} | "
                     f"{cell(case, 'delay_ms', ',.1f')} | {cell(case, 'members_s', '.2f')} |")
    def dist(key: str) -> str:
        return (f"p50 {cell('dag', f'{key}_p50_ms', ',.0f')}, p95 "
                f"{cell('dag', f'{key}_p95_ms', ',.0f')}, "
                f"max {cell('dag', f'{key}_max_ms', ',.0f')}")

    lines += [f"| the DAG's {roots * children:,} children (after their root's `completed_at`) | "
              f"| {dist('child_due')} | | {dist('child')} | |",
              "",
              "A child's start includes its turn in the queue (the children become due while "
              "the roots drain, then wait for a free slot behind one another); its *made due* "
              "is what the dependency itself costs it."]
    return lines


def report(runs: list[dict[str, Any]], m: dict[str, Any], args: argparse.Namespace,
           command: str) -> list[str]:
    n = args.jobs
    roots, children = args.dag
    versions = {run["database"]: run["version"] for run in runs}
    pg = m["postgresql"]
    lines = [
        "<!-- Written by benchmarks/workflow_bench.py --write (`make bench`, "
        "`make bench-workflow`): rerun it, don't edit. -->",
        "",
        f"Measured on {m['started']}, django-edgejobs as of commit `{m['commit']}`, "
        f"{args.reps} repetition(s), {m['minutes']:.0f} minutes. Machine: nproc "
        f"{m['nproc']} ({m['cpu']}), Linux {m['kernel']}, PostgreSQL {pg} on 127.0.0.1:5432"
        + (f", SQLite {versions['sqlite']}" if "sqlite" in versions else "")
        + f", Python {m['python']}; load average {', '.join(f'{x:.2f}' for x in m['load_start'])}"
        f" at the start, {', '.join(f'{x:.2f}' for x in m['load_end'])} at the end.",
        "",
        f"Command: `{command}`. Workers: {args.workers} `manage.py runworker` processes × "
        f"`--concurrency {args.concurrency}` (`--no-scheduler`; the supervisor on, so the "
        "resumer's sweep runs as in production), testproject settings, `DJANGO_DEBUG=0`, "
        "handler `qa.noop` (returns None).",
        "",
        "Cases, each from empty tables, enqueued then drained (the workers start after the "
        "enqueue and `ANALYZE`), the three back to back in each repetition in a rotating "
        "order:",
        "",
        f"- **fan-out/fan-in**: `chord([sig(\"qa.noop\") for _ in range({n})], "
        "sig(\"qa.noop\")).enqueue()`:"
        f" a batch of {n:,} jobs and an `on_success` callback that depends on all of them "
        f"({n:,} dependency edges), one call;",
        f"- **plain**: the same {n:,} no-op jobs from one `enqueue_many` call, no batch, no "
        "dependencies;",
        f"- **3-level DAG**: one `enqueue_many` call of {roots:,} roots, {children} children "
        f"per root (`depends_on=[root]` by position) and one final job with `depends_on` all "
        f"{roots * children:,} children.",
        "",
        "*Enqueue*: the whole call (its transaction and the settle after its commit). "
        "*Drain*: the first job's `started_at` to the last `completed_at` (the callback's, the "
        "final job's), the database's clock, so worker start-up is not counted; those columns "
        "are the handlers' own begin and end, which a worker stamps when it writes the "
        "outcome, so *drain to the last commit* ends instead at the last `completed` event, "
        "written in the same transaction as its completion: when a reader of the database sees "
        "the work done. *jobs/s*: all the case's jobs over the drain. The *ratio* is "
        "fan-out/fan-in over plain within each repetition (times: above 1 is the "
        "dependencies' overhead; jobs/s: below 1 is). Median of the repetitions (min–max).",
        "",
    ]
    for run in runs:
        lines += [f"### {'PostgreSQL' if run['database'] == 'postgresql' else 'SQLite'}", "",
                  *table(run, args), ""]
    lines += [
        "Checked in every repetition (the script exits 1 and does not write this section "
        "otherwise): every job completed, once (attempts = 1); the callback and the final "
        "job have one `processing` event; every edge is resolved and no job started before "
        "a job it depends on completed; `get_batch()` says finished with "
        f"{n:,} completed, and the callback's payload carries those counts.",
        "",
        "How a waiting job becomes due (`store/dependencies.py`, `runtime/worker.py`): a "
        "worker's handler threads hand their outcomes to its one completer thread, which "
        "writes them in batches (up to 500; on PostgreSQL one statement, which also says "
        "which of the jobs have unresolved edges) and then, after that commit and before its "
        "next batch, settles those edges: they are resolved under their row locks, the "
        "dependent's row is locked (`SELECT … FOR UPDATE`) and its open edges looked for (one "
        "probe of a partial index), and the transaction that finds none left makes it due and "
        "sends the queue's NOTIFY "
        "(PostgreSQL; on SQLite the workers' file watch wakes them). So the callback waits "
        "for no poll, nor for the resumer, whose sweep of stranded edges (5 s after the job "
        "finished, `STRANDED_AFTER`, then the next `SUPERVISOR_INTERVAL`) is only for a "
        "settle that never ran (a worker that died between its commit and it). It waits for "
        "the completers: a fan-in's settles all lock the one callback row, one after another, "
        "so a batch costs more than a plain one; meanwhile the handler threads go on claiming "
        "and running members, whose outcomes queue for the completer (their jobs stay "
        "`processing` until written). The column *last dependency's completion committed* is "
        "that queue: the callback is made due shortly after that commit, by the settle that "
        "follows it. (Before 03fd786 PostgreSQL's completion statement could read every "
        "`processing` job for each batch, so a completer that fell behind fell further: this "
        "chord then drained 4.7x slower than plain, its callback 5.2 s after its last "
        "member.)",
    ]
    return lines


def write_doc(section: list[str]) -> None:
    text = DOC.read_text()
    body = "\n".join([BEGIN, *section, END])
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + body + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + f"\n\n{HEADING}\n\n{body}\n"
    DOC.write_text(text)


def parse_dag(value: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d+)x(\d+)", value)
    if not match or int(match[1]) < 1 or int(match[2]) < 1:
        raise argparse.ArgumentTypeError("--dag is ROOTSxCHILDREN, e.g. 100x10")
    return int(match[1]), int(match[2])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="runworker processes")
    parser.add_argument("--concurrency", type=int, default=4, help="each one's --concurrency")
    parser.add_argument("--jobs", type=int, default=10_000, help="the fan-out's width")
    parser.add_argument("--dag", type=parse_dag, default=(100, 10),
                        help="the DAG's ROOTSxCHILDREN (default 100x10, plus one final job)")
    parser.add_argument("--sqlite", action="store_true", help="SQLite too")
    parser.add_argument("--write", action="store_true",
                        help="update the section of docs/benchmarks.md")
    parser.add_argument("--timeout", type=float, default=900, help="per drain, seconds")
    parser.add_argument("--child", choices=("postgresql", "sqlite"), help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_main(args)
        return
    if args.reps < 1 or args.jobs < 1:
        parser.error("--reps and --jobs must be at least 1")

    started = time.monotonic()
    m = machine()
    OUT.mkdir(parents=True, exist_ok=True)
    runs = []
    for database in ("postgresql", "sqlite") if args.sqlite else ("postgresql",):
        result = OUT / f"workflow-{database}.json"
        result.unlink(missing_ok=True)
        argv = [sys.executable, __file__, *sys.argv[1:], "--child", database,
                "--result", str(result)]
        if subprocess.run(argv, check=False).returncode != 0 or not result.exists():
            raise SystemExit(f"the {database} run failed")
        runs.append(json.loads(result.read_text()))
    m["load_end"] = os.getloadavg()
    m["minutes"] = (time.monotonic() - started) / 60

    python = os.path.relpath(sys.executable, ROOT) if not os.path.relpath(
        sys.executable, ROOT).startswith("..") else sys.executable
    command = shlex.join(["DJANGO_DEBUG=0", python, "benchmarks/workflow_bench.py",
                          *sys.argv[1:]])
    section = report(runs, m, args, command)
    print("\n" + HEADING + "\n\n" + "\n".join(section[2:]), flush=True)
    problems = [p for run in runs for p in run["problems"]]
    if problems:
        print("\nCHECKS FAILED:\n  " + "\n  ".join(problems), file=sys.stderr)
        raise SystemExit(1)
    if args.write:
        write_doc(section)
        print(f"\nwrote the section \"{HEADING[3:]}\" of {os.path.relpath(DOC, ROOT)}")


if __name__ == "__main__":
    main()
