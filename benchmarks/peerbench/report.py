"""Render the results of ``benchmarks/peer_bench.py`` as ``docs/benchmarks.md``.

Every figure is a median over repetitions with its min-max; every comparison is a ratio taken
repetition by repetition (edgejobs and the peer measured minutes apart in the same run), never
two absolute numbers from different runs.
"""

# ruff: noqa: RUF001, RUF003 (typography: ×, –, … in the report)
from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from typing import Any

LABELS = {
    "edgejobs-pg": "**django-edgejobs** (PostgreSQL)",
    "edgejobs-pg-b50": "**django-edgejobs** `--batch-size 50` (PostgreSQL)",
    "pgqueuer": "pgqueuer (PostgreSQL)",
    "procrastinate": "procrastinate (PostgreSQL)",
    "django-tasks-db-pg": "django-tasks-db (PostgreSQL)",
    "celery-redis": "Celery (Redis broker)",
    "huey-pg": "huey (PostgreSQL, `sql_huey`)",
    "huey-redis": "huey (Redis)",
    "edgejobs-sqlite": "**django-edgejobs** (SQLite)",
    "edgejobs-sqlite-b50": "**django-edgejobs** `--batch-size 50` (SQLite)",
    "huey-sqlite": "huey (SQLite)",
    "django-tasks-db-sqlite": "django-tasks-db (SQLite)",
}
SHORT = {
    "pgqueuer": "pgqueuer", "procrastinate": "procrastinate",
    "django-tasks-db-pg": "django-tasks-db", "celery-redis": "Celery (Redis)",
    "huey-pg": "huey (PG)", "huey-redis": "huey (Redis)", "huey-sqlite": "huey",
    "django-tasks-db-sqlite": "django-tasks-db",
}
SECTIONS = {
    "postgresql": ("PostgreSQL (and the Redis-backed peers)", "edgejobs-pg"),
    "sqlite": ("SQLite", "edgejobs-sqlite"),
}
SECTION_OF = {"edgejobs-sqlite": "sqlite", "edgejobs-sqlite-b50": "sqlite",
              "huey-sqlite": "sqlite",
              "django-tasks-db-sqlite": "sqlite"}
WORKERS = {
    "w2-c1": "one process, concurrency 1",
    "w2-c4": "one process, concurrency 4",
    "w2-p2": "two processes, concurrency 1 each",
}


def ok(r: dict) -> bool:
    return "error" not in r and "unsupported" not in r


def spread(values: Sequence[float], fmt: str = ",.0f", unit: str = "") -> str:
    if not values:
        return "—"
    med = statistics.median(values)
    if len(values) == 1:
        return f"{med:{fmt}}{unit}"
    return f"{med:{fmt}}{unit} ({min(values):{fmt}}–{max(values):{fmt}})"


def why_not(runs: Sequence[dict]) -> str:
    for r in runs:
        if "unsupported" in r:
            return f"n/a: {r['unsupported']}"
        if "error" in r:
            return f"failed: {r['error'][:120]}"
    return "—"


class Report:
    def __init__(self, results: dict, chart: str | None):
        self.r = results
        self.chart = chart
        self.runs = results["runs"]
        self.lines: list[str] = []

    def add(self, *lines: str) -> None:
        self.lines.extend(lines)

    # -- numbers --------------------------------------------------------------------------------

    def values(self, case: str, name: str, key: str) -> list[float]:
        return [r[key] for r in self.runs.get(case, {}).get(name, [])
                if ok(r) and r.get(key) is not None]

    def cell(self, case: str, name: str, key: str, fmt: str = ",.0f", unit: str = "") -> str:
        runs = self.runs.get(case, {}).get(name, [])
        vals = self.values(case, name, key)
        return spread(vals, fmt, unit) if vals else why_not(runs)

    def ratios(self, case: str, base: str, name: str, key: str, higher_better: bool,
               base_case: str | None = None) -> list[float]:
        """edgejobs' advantage over ``name`` per repetition (> 1: edgejobs better)."""
        a = self.runs.get(base_case or case, {}).get(base, [])
        b = self.runs.get(case, {}).get(name, [])
        out = []
        for x, y in zip(a, b, strict=False):
            if ok(x) and ok(y) and x.get(key) and y.get(key):
                out.append(x[key] / y[key] if higher_better else y[key] / x[key])
        return out

    def adv(self, case: str, base: str, name: str, key: str, higher_better: bool = True) -> str:
        if name == base or name.startswith("edgejobs"):
            return "1 (baseline)" if name == base else "—"
        vals = self.ratios(case, base, name, key, higher_better)
        return spread(vals, ".2f", "×") if vals else "—"

    def names(self, section: str, case: str | None = None) -> list[str]:
        found = [n for n in LABELS if SECTION_OF.get(n, "postgresql") == section
                 and any(n in self.runs.get(c, {}) for c in ([case] if case else self.runs))]
        return found

    # -- sections -------------------------------------------------------------------------------

    def render(self) -> str:
        m = self.r["machine"]
        quick = " (a `--quick` run: smaller workloads)" if self.r.get("quick") else ""
        self.add(
            "---", "orphan: true", "---", "",  # not in a toctree (yet): no Sphinx warning
            "# Benchmarks: django-edgejobs and its peers",
            "",
            "<!-- Written by benchmarks/peer_bench.py (`make bench`): rerun it, don't edit. -->",
            "",
            f"Measured on {m['started']}, {self.r['reps']} "
            f"repetition(s){quick}, django-edgejobs as of commit `{m['commit']}`. "
            "Rerun with `make bench` "
            f"(this run took {m.get('minutes', 0):.0f} minutes on this machine; "
            "`make bench BENCH_ARGS=--quick` is a smoke run of about 5 minutes, "
            "`BENCH_ARGS='--only pgqueuer,celery-redis'` for some peers only).",
            "",
            "How to read it: every number is the **median** of the repetitions with the "
            "**min–max** in brackets. The *edgejobs advantage* columns compare edgejobs with "
            "each peer **repetition by repetition**, the two measured minutes apart in the "
            "same run: **above 1 means edgejobs did better** (more jobs/s, or less latency, "
            "time or memory), below 1 means the peer did. The machine is shared with other "
            "engineers' test runs, so absolute figures move between runs (see the load "
            "average); the ratios move much less.",
            "")
        if self.chart:
            self.add(f"![Throughput and latency of each contender]({self.chart})", "")
        self.summary()
        self.machine()
        self.contenders()
        for section in SECTIONS:
            if self.names(section):
                self.section(section)
        self.ceiling()
        self.verification()
        self.limits()
        self.method()
        return "\n".join(self.lines) + "\n"

    def summary(self) -> None:
        self.add("## Summary", "")
        checks = [("w1-single", "W1 enqueue, one call each", "rate", True),
                  ("w1-bulk", "W1 enqueue, bulk", "rate", True),
                  ("w2-c1", "W2 drain, concurrency 1", "rate", True),
                  ("w2-c4", "W2 drain, concurrency 4", "rate", True),
                  ("w2-p2", "W2 drain, two processes", "rate", True),
                  ("w3", "W3 pickup latency p50", "p50_ms", False),
                  ("w4", "W4 realistic mix", "seconds", False)]
        for section, (title, base) in SECTIONS.items():
            if not self.names(section):
                continue
            self.add(f"{title}, edgejobs advantage per peer (median):", "")
            for case, label, key, higher in checks:
                parts = []
                for name in self.names(section, case):
                    if name.startswith("edgejobs"):
                        continue
                    vals = self.ratios(case, base, name, key, higher)
                    if vals:
                        parts.append(f"{SHORT[name]} {statistics.median(vals):.2f}×")
                if parts:
                    self.add(f"- {label}: " + ", ".join(parts))
            self.add("")

    def machine(self) -> None:
        m = self.r["machine"]
        load = lambda v: ", ".join(f"{x:.2f}" for x in v)  # noqa: E731
        self.add("## Machine", "",
                 "| | |", "| --- | --- |",
                 f"| CPU | {m['cpus']} × {m['cpu']} |",
                 f"| memory | {m['mem_gib']} GiB |",
                 f"| kernel | Linux {m['kernel']} |",
                 f"| PostgreSQL | {m['postgresql']} on 127.0.0.1:5432 "
                 f"({', '.join(f'{k}={v}' for k, v in sorted(m['pg_settings'].items()))}) |",
                 f"| Redis | {m['redis']} on 127.0.0.1:6379 |",
                 f"| Python | {m['python']} (project venv), {m['python_peers']} (peers' venv) |",
                 f"| pgbench | {m['pgbench']} |",
                 f"| load average (1, 5, 15 min) | at start {load(m['load_start'])}; at end "
                 f"{load(m.get('load_end', m['load_start']))} |", "")

    def contenders(self) -> None:
        self.add("## Contenders", "",
                 "Same machine, same PostgreSQL server, same Redis, same jobs (a no-op for "
                 "W1–W2). Each peer runs at its defaults except where noted.", "",
                 "| contender | version | bulk enqueue | concurrency in a process | retries | "
                 "cron | notes |", "| --- | --- | --- | --- | --- | --- | --- |")
        for name, info in self.r["info"].items():
            if "error" in info:
                continue
            self.add(f"| {LABELS[name]} | {info['version']} | "
                     f"{'`' + info['bulk_api'] + '`' if info['bulk_api'] else 'none'} | "
                     f"{'yes' if info['concurrency_in_process'] else 'no: one job per process'}"
                     f" | {'yes' if info['retries'] else 'none'} | {info['cron'] or 'none'} | "
                     f"{'; '.join(info['notes'])} |")
        for name, why in self.r.get("skipped", {}).items():
            self.add(f"| {LABELS[name]} | — | — | — | — | — | not run: {why} |")
        self.add("")

    def section(self, section: str) -> None:
        title, base = SECTIONS[section]
        cases = self.r["cases"]
        self.add(f"## Results: {title}", "")
        names = self.names(section)

        n1 = cases["w1-single"]["n"]
        self.add(f"### W1: enqueue {n1:,} no-op jobs", "",
                 "One call per job, each its own transaction (autocommit), then the "
                 "contender's bulk call for all of them at once where it has one. Jobs/s.", "",
                 "| contender | one call each | edgejobs advantage | bulk | edgejobs advantage |",
                 "| --- | --- | --- | --- | --- |")
        for name in names:
            if name not in self.runs.get("w1-single", {}):
                continue
            bulk = (self.cell("w1-bulk", name, "rate") if name in self.runs.get("w1-bulk", {})
                    else "n/a: no bulk enqueue API")
            self.add(f"| {LABELS[name]} | {self.cell('w1-single', name, 'rate')} | "
                     f"{self.adv('w1-single', base, name, 'rate')} | {bulk} | "
                     f"{self.adv('w1-bulk', base, name, 'rate')} |")

        n2 = cases["w2-c1"]["n"]
        self.add("", f"### W2: drain {n2:,} queued no-op jobs", "",
                 "Jobs/s from the moment the first job starts to the moment the queue's own "
                 "state says all have finished; every job checked to have run exactly once "
                 "(see *Verification*).", "",
                 "| contender | " + " | ".join(f"{WORKERS[c]} | edgejobs advantage"
                                               for c in WORKERS) + " |",
                 "| --- |" + " --- | --- |" * len(WORKERS))
        for name in names:
            if not any(name in self.runs.get(c, {}) for c in WORKERS):
                continue
            cells = []
            for c in WORKERS:
                if name in self.runs.get(c, {}):
                    cells += [self.cell(c, name, "rate"), self.adv(c, base, name, "rate")]
                else:
                    cells += ["n/a: one job at a time per process", "—"]
            self.add(f"| {LABELS[name]} | " + " | ".join(cells) + " |")

        self.add("", "#### Memory and connections per worker process", "",
                 "Peak resident set (VmHWM, MiB) of one worker process and its children at the "
                 "end of the drain, and the most connections one worker process held at once: "
                 "to PostgreSQL, counted in `pg_stat_activity` by the worker's client ports; to "
                 "Redis for the Redis-backed peers, from the worker's sockets.", "",
                 "| contender | peak RSS, c=1 | edgejobs advantage | peak RSS, c=4 | "
                 "connections c=1 / c=4 / per process of 2 |",
                 "| --- | --- | --- | --- | --- |")
        for name in names:
            if name not in self.runs.get("w2-c1", {}):
                continue
            c4 = self.cell("w2-c4", name, "rss_mib", ".0f") if name in self.runs.get(
                "w2-c4", {}) else "n/a"
            conns = " / ".join(
                self.cell(c, name, "connections", ".0f") if name in self.runs.get(c, {})
                else "n/a" for c in WORKERS) if section != "sqlite" else "— (a file)"
            self.add(f"| {LABELS[name]} | {self.cell('w2-c1', name, 'rss_mib', '.0f')} | "
                     f"{self.adv('w2-c1', base, name, 'rss_mib', higher_better=False)} | "
                     f"{c4} | {conns} |")

        w3 = cases["w3"]
        self.add("", "### W3: pickup latency", "",
                 f"An idle worker (concurrency {w3['concurrency']}); {w3['n']} jobs enqueued "
                 f"{w3['gap'] * 1000:.0f} ms apart; each job records its start time and the "
                 "enqueue time carried in its payload. Milliseconds.", "",
                 "| contender | p50 | edgejobs advantage | p99 | edgejobs advantage | "
                 "worker |", "| --- | --- | --- | --- | --- | --- |")
        for name in names:
            if name not in self.runs.get("w3", {}):
                continue
            procs = self.runs["w3"][name][0].get("processes", 1)
            self.add(f"| {LABELS[name]} | {self.cell('w3', name, 'p50_ms', ',.1f')} | "
                     f"{self.adv('w3', base, name, 'p50_ms', higher_better=False)} | "
                     f"{self.cell('w3', name, 'p99_ms', ',.1f')} | "
                     f"{self.adv('w3', base, name, 'p99_ms', higher_better=False)} | "
                     f"{'1 process' if procs == 1 else f'{procs} processes'} |")

        w4 = cases["w4"]
        self.add("", "### W4: a realistic mix", "",
                 f"{w4['n']:,} queued jobs: 20% sleep 50 ms (I/O), 5% fail their first attempt "
                 "and succeed on the retry, the rest return at once; concurrency "
                 f"{w4['concurrency']} in one worker, while a cron schedule ticks (every second "
                 "where the contender can, else every minute; its jobs queue behind the "
                 "backlog, so only those that got a turn run during the mix). Seconds from the "
                 "first start to the last finish (the floor set by the sleeps alone is "
                 f"{w4['n'] // 5 * 0.05 / w4['concurrency']:.1f} s).", "",
                 "| contender | seconds | edgejobs advantage | jobs/s | cron jobs run during "
                 "the mix | verified |", "| --- | --- | --- | --- | --- | --- |")
        for name in names:
            if name not in self.runs.get("w4", {}):
                continue
            runs = self.runs["w4"][name]
            good = [r for r in runs if ok(r)]
            cron = good[0].get("cron") if good else None
            ticks = (f"{spread([r['ticks'] for r in good], '.0f')} ({cron})" if cron
                     else "no cron")
            verified = (f"{sum(1 for r in good if r.get('ok'))}/{len(runs)} runs"
                        if good else why_not(runs))
            if good and not self.r["info"][name]["retries"]:
                verified += " (no retries: the 5% stay failed)"
            self.add(f"| {LABELS[name]} | {self.cell('w4', name, 'seconds', '.2f')} | "
                     f"{self.adv('w4', base, name, 'seconds', higher_better=False)} | "
                     f"{self.cell('w4', name, 'rate')} | {ticks} | {verified} |")
        self.add("")

    def ceiling(self) -> None:
        ceil = self.r.get("ceiling") or {}
        if not ceil:
            return
        rate = lambda k: [r["rate"] for r in ceil.get(k, []) if "rate" in r]  # noqa: E731
        self.add("## The ceiling: what PostgreSQL does with the minimal SQL", "",
                 "`pgbench` (C, no Python, no framework) runs the least SQL a job's life needs "
                 "on a job table with the usual columns and a partial index for the claim "
                 "(`benchmarks/peerbench/ceiling.py`): *enqueue* = `INSERT`; *drain* = claim "
                 "(`UPDATE … FROM (SELECT … ORDER BY priority, run_at LIMIT n FOR UPDATE "
                 "SKIP LOCKED)`) then complete (`UPDATE … WHERE id IN (…)`), each its own "
                 "transaction, from 10,000 queued jobs; *life cycle* = the three in a row. Per "
                 "job, and 50 at a time. Jobs/s.", "",
                 "| script | per job, 1 client | per job, 2 clients | per job, 4 clients | "
                 "50 at a time, 1 client | 50 at a time, 4 clients |",
                 "| --- | --- | --- | --- | --- | --- |")
        for script in ("lifecycle", "enqueue", "drain"):
            cells = [spread(rate(f"{script}-{b}-{c}")) if f"{script}-{b}-{c}" in ceil else "—"
                     for b, c in ((1, 1), (1, 2), (1, 4), (50, 1), (50, 4))]
            self.add(f"| {script.replace('lifecycle', 'life cycle')} | " + " | ".join(cells)
                     + " |")

        def per_rep(edge: Callable[[int], float | None], key: str) -> list[float]:
            out = []
            for i, c in enumerate(ceil.get(key, [])):
                e = edge(i)
                if e and "rate" in c:
                    out.append(e / c["rate"])
            return out

        def run_rate(case: str, name: str) -> Callable[[int], float | None]:
            def get(i: int) -> float | None:
                runs = self.runs.get(case, {}).get(name, [])
                return runs[i]["rate"] if i < len(runs) and ok(runs[i]) else None
            return get

        def lifecycle(enq: tuple[str, str], drain: tuple[str, str]):
            def get(i: int) -> float | None:
                a, b = run_rate(*enq)(i), run_rate(*drain)(i)
                return 1 / (1 / a + 1 / b) if a and b else None
            return get

        rows = [
            ("enqueue, one job per transaction", run_rate("w1-single", "edgejobs-pg"),
             "enqueue-1-1", "W1 one call each vs INSERT per job, 1 client"),
            ("enqueue, bulk", run_rate("w1-bulk", "edgejobs-pg"), "enqueue-50-1",
             "W1 `enqueue_many` (5,000 in one call) vs INSERT of 50 per statement, 1 client"),
            ("drain, concurrency 1 (batch 1)", run_rate("w2-c1", "edgejobs-pg"), "drain-1-1",
             "W2 c=1 vs claim+complete per job, 1 client"),
            ("drain, concurrency 4 (batch 4)", run_rate("w2-c4", "edgejobs-pg"), "drain-1-4",
             "W2 c=4 (claims 4 at a time) vs claim+complete per job, 4 clients"),
            ("drain, two processes", run_rate("w2-p2", "edgejobs-pg"), "drain-1-2",
             "W2 two processes (c=1 each) vs claim+complete per job, 2 clients"),
            ("drain, `--batch-size 50`, concurrency 1", run_rate("w2-c1", "edgejobs-pg-b50"),
             "drain-50-1", "W2 c=1 b=50 vs claim+complete 50 at a time, 1 client"),
            ("drain, `--batch-size 50`, concurrency 4", run_rate("w2-c4", "edgejobs-pg-b50"),
             "drain-50-4", "W2 c=4 b=50 vs claim+complete 50 at a time, 4 clients"),
            ("life cycle, one by one",
             lifecycle(("w1-single", "edgejobs-pg"), ("w2-c1", "edgejobs-pg")), "lifecycle-1-1",
             "1 / (1/W1 one call each + 1/W2 c=1) vs the life cycle per job, 1 client"),
            ("life cycle, in batches",
             lifecycle(("w1-bulk", "edgejobs-pg"), ("w2-c1", "edgejobs-pg-b50")),
             "lifecycle-50-1", "1 / (1/W1 bulk + 1/W2 c=1 b=50) vs the life cycle 50 at a "
             "time, 1 client"),
        ]
        self.add("", "### django-edgejobs as a fraction of the ceiling (PostgreSQL)", "",
                 "Per repetition, edgejobs' jobs/s divided by pgbench's in the same repetition "
                 "(1 = as fast as the bare SQL).", "",
                 "| what | fraction of the ceiling | compared |", "| --- | --- | --- |")
        for label, edge, key, how in rows:
            vals = per_rep(edge, key)
            if vals:
                self.add(f"| {label} | {spread(vals, '.2f')} | {how} |")
        self.add("")

    def verification(self) -> None:
        self.add("## Verification: every job ran exactly once", "",
                 "After each W2 and W4 run the harness reads the queue's own state (the no-op "
                 "records nothing itself); a run that does not add up is flagged in the tables "
                 "and in the log. In W4 the jobs also write a start and a finish line, so "
                 "executions are counted there too (twice for the jobs that fail once).", "")
        tally: dict[str, list[int]] = {}
        for name in LABELS:
            for case in ("w2-c1", "w2-c4", "w2-p2", "w4"):
                runs = self.runs.get(case, {}).get(name, [])
                if runs:
                    t = tally.setdefault(name, [0, 0])
                    t[0] += sum(1 for r in runs if ok(r) and r.get("ok"))
                    t[1] += len(runs)
        for name, (good, total) in tally.items():
            how = next((r["how"] for c in ("w2-c1", "w4")
                        for r in self.runs.get(c, {}).get(name, []) if ok(r) and "how" in r), "")
            bad = [f"{c}: {r.get('states')} runs {r.get('runs')}" for c in self.runs
                   for r in self.runs[c].get(name, []) if ok(r) and "ok" in r and not r["ok"]]
            self.add(f"- {LABELS[name]}: {good}/{total} runs verified"
                     + (f". {how}." if how else " (the runs failed, see below).")
                     + (f" Failed: {'; '.join(bad)[:400]}" if bad else ""))
        self.add("")

    def limits(self) -> None:
        self.add("## What a peer could not do, and why", "")
        for name, info in self.r["info"].items():
            if "error" in info:
                continue
            gaps = []
            if not info["bulk_api"]:
                gaps.append("no bulk enqueue API (W1 bulk: n/a; W2/W4 seed the queue with the "
                            "rows or messages its enqueue writes, in one transaction, untimed)")
            if not info["concurrency_in_process"]:
                gaps.append("one job at a time per worker process (W2 c=4: n/a; W3/W4 "
                            "concurrency 4 = 4 processes)")
            if not info["retries"]:
                gaps.append("no retries (W4: the 5% that fail stay failed)")
            if not info["cron"]:
                gaps.append("no periodic jobs (W4 runs without a cron schedule)")
            elif info["cron"] != "every second":
                gaps.append(f"cron granularity: {info['cron']}")
            if name == "pgqueuer":
                gaps.append("`--max-concurrent-tasks` must be at least twice the batch size, so "
                            "its concurrency 1 allows 2 jobs in flight; its `pgq run` CLI fails "
                            "at start-up in 1.6.0 (the harness calls `pgqueuer.run()`, which the "
                            "CLI wraps)")
            for case, by_name in self.runs.items():
                for r in by_name.get(name, []):
                    if "error" in r:
                        gaps.append(f"{case} failed: {r['error'][:160]}")
                        break
            if gaps:
                self.add(f"- {LABELS[name]}: " + "; ".join(gaps) + ".")
        for name, why in self.r.get("skipped", {}).items():
            self.add(f"- {LABELS[name]}: not run ({why}).")
        self.add("")

    def method(self) -> None:
        self.add(
            "## Method", "",
            "- One command: `make bench` builds the peers' virtual environment "
            "(`benchmarks/.peers-venv`, pinned in `benchmarks/peerbench/requirements.txt`) if "
            "missing, creates the `bench_*` databases it needs (marked as its own; it never "
            "drops a database), runs everything and rewrites this page and its chart. edgejobs "
            "runs from the project's `.venv`, through its public API (`enqueue`, "
            "`enqueue_many`) and `runworker`, with `DJANGO_DEBUG=0`.",
            "- Before and after a change: `make bench BENCH_ARGS='--only none --baseline REF'` "
            "also runs edgejobs as it was at commit `REF` (exported from git, its own "
            "databases), interleaved with today's, and writes `benchmarks/.out/before-after.md`"
            " (now / before per repetition).",
            "- Interleaving: each repetition runs every workload for every contender back to "
            "back, in an order that rotates between repetitions; a ratio is taken within one "
            "repetition.",
            "- Each run starts from an empty queue. After a queue is seeded the harness runs "
            "`ANALYZE`, as a database in steady state has statistics (without them "
            "django-tasks-db's claim query scans the whole table: 43 jobs/s instead of ~200).",
            "- Workers log at WARNING (no line per job) for every contender. Async-native "
            "peers (pgqueuer, procrastinate) run `async def` jobs; the others plain functions "
            "on threads (Celery `--pool threads`, huey `-k thread`, edgejobs' handler threads).",
            "- django-tasks-db keeps its PostgreSQL connections (`CONN_MAX_AGE=None`): with "
            "Django's default its `db_worker` opens a connection per task.",
            "- W2's clock starts when the first job (a marker queued ahead of the no-ops) "
            "starts, so worker start-up is not counted, and stops when the queue's state shows "
            "every job finished (polled every 100 ms).",
            "- Peak RSS is `VmHWM` from `/proc`; connections are matched to a worker by its "
            "client ports.",
            "- Not a test: nothing asserts on time, and `make test` / `.ci/run` never run it. "
            "Raw results of the last run: `benchmarks/.out/results.json`, worker logs in "
            "`benchmarks/.out/logs/`.",
        )


def render(results: dict[str, Any], chart: str | None) -> str:
    return Report(results, chart).render()


def before_after(results: dict[str, Any]) -> str:
    """``--baseline REF``: edgejobs now against edgejobs at REF, measured in the same run (each
    repetition runs both back to back), as medians and as per-repetition ratios now / before."""
    ref = results.get("baseline", "?")
    m = results["machine"]
    lines = [f"# django-edgejobs {m['commit']} against {ref}, in one run", "",
             f"{m['cpus']} × {m['cpu']}, PostgreSQL {m['postgresql']}, Python {m['python']}; "
             f"{results['reps']} repetitions, {m.get('minutes', '?')} min; load average "
             f"{m['load_start']} at the start. Ratio: now / before per repetition (throughput: "
             "> 1 is faster now; latency: < 1 is faster now), median (min–max). Drains (w2) are "
             "timed by the jobs' own times, first start to last finish, not by the harness's "
             "0.1 s polling.", "",
             "| case | database | now | before | ratio |", "| --- | --- | --- | --- | --- |"]
    for case, by_name in results["runs"].items():
        for now, before, db in (("edgejobs-pg", "before-pg", "PostgreSQL"),
                                ("edgejobs-sqlite", "before-sqlite", "SQLite")):
            a, b = by_name.get(now, []), by_name.get(before, [])
            if not a or not b:
                continue
            key = "p50_ms" if case == "w3" else "rate"
            if all(r.get("queue_rate") for r in a + b if ok(r)):
                key = "queue_rate"  # a drain, timed by the jobs' own started/completed times
            fmt, unit = (".1f", " ms") if key == "p50_ms" else (",.0f", "/s")
            ratios = [x[key] / y[key] for x, y in zip(a, b, strict=False)
                      if ok(x) and ok(y) and x.get(key) and y.get(key)]
            lines.append(f"| {case} | {db} | {spread([r[key] for r in a if ok(r)], fmt, unit)} "
                         f"| {spread([r[key] for r in b if ok(r)], fmt, unit)} "
                         f"| {spread(ratios, '.3f')} |")
    return "\n".join(lines) + "\n"
