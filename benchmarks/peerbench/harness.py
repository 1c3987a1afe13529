"""The workloads, written once against a small ``Contender`` interface.

A driver process (``drive.py CONTENDER WORKLOAD JSON``) builds one contender, runs one
workload once and prints one ``RESULT {...}`` line. The orchestrator (``peer_bench.py``) calls
drivers in an interleaved order and does the statistics. Each contender module implements the
same six jobs (see ``marks.py``): ``noop`` (W1, W2: records nothing), ``mark`` (records its start
and the enqueue time from its payload), and for the mix ``quick``, ``sleep`` (50 ms of I/O),
``flaky`` (fails its first attempt) and ``tick`` (the cron job).

Nothing here asserts on time: a workload fails only when jobs are lost, run twice or never
finish (a generous deadline).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
OUT = Path(os.environ.get("BENCH_OUT", HERE.parent / ".out"))
MARKS = OUT / "marks.log"
PG = os.environ.get("BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
REDIS = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379")
REDIS_DB = int(os.environ.get("BENCH_REDIS_DB", "9"))  # and REDIS_DB + 1 (Celery's results)
DB_COMMENT = "scratch database of benchmarks/peer_bench.py (django-edgejobs)"
PG_PORT, REDIS_PORT = 5432, 6379


class Unsupported(Exception):
    """The contender has no way to do what the workload asks (reported, not a failure)."""


# --- databases --------------------------------------------------------------------------------

def pg_url(db: str) -> str:
    return f"{PG}/{db}"


def ensure_database(name: str) -> str:
    """Create ``name`` (a ``bench_*`` database) if missing; refuse one this script did not make.

    The comment on the database is the proof of ownership: a ``bench_*`` database without it
    belongs to someone else and is never written to (nor ever dropped: nothing here drops).
    """
    import psycopg
    from psycopg import sql

    if not name.startswith("bench_"):
        raise ValueError(f"benchmark databases are called bench_*, not {name!r}")
    with psycopg.connect(pg_url("postgres"), autocommit=True) as conn:
        row = conn.execute("SELECT shobj_description(oid, 'pg_database') FROM pg_database "
                           "WHERE datname = %s", [name]).fetchone()
        if row is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            conn.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(
                sql.Identifier(name), sql.Literal(DB_COMMENT)))
        elif row[0] != DB_COMMENT:
            raise SystemExit(f"database {name!r} exists but was not created by this benchmark "
                             "(no marker comment): refusing to use it")
    return pg_url(name)


# --- processes ---------------------------------------------------------------------------------

def children(pid: int) -> list[int]:
    """``pid`` and all its descendants (from /proc)."""
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        try:
            for tid in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{tid}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except (FileNotFoundError, ProcessLookupError):
            pass
    return found


def peak_rss_mib(pids: Iterable[int]) -> float:
    """Sum of the peak resident set sizes (VmHWM) of ``pids``, in MiB."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total / 1024


def local_ports_to(pids: Iterable[int], remote_port: int) -> set[int]:
    """Local ports of the established TCP connections of ``pids`` to ``remote_port``."""
    inodes = set()
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    link = os.readlink(f"/proc/{pid}/fd/{fd}")
                except OSError:
                    continue
                if link.startswith("socket:["):
                    inodes.add(int(link[8:-1]))
        except (FileNotFoundError, PermissionError):
            pass
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                rows = f.read().splitlines()[1:]
        except FileNotFoundError:
            continue
        for row in rows:
            cols = row.split()
            if (cols[3] == "01" and int(cols[9]) in inodes
                    and int(cols[2].rsplit(":", 1)[1], 16) == remote_port):
                ports.add(int(cols[1].rsplit(":", 1)[1], 16))
    return ports


class Workers:
    """Worker processes of one run: started in their own session, logs in OUT/logs/."""

    def __init__(self, specs: Sequence[tuple[list[str], dict[str, str]]], label: str):
        self.specs = specs
        self.log_path = OUT / "logs" / f"{label}.log"
        self.procs: list[subprocess.Popen] = []

    def __enter__(self) -> Workers:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log = open(self.log_path, "ab")
        for argv, env in self.specs:
            self.log.write(f"$ {' '.join(argv)}\n".encode())
            self.log.flush()
            self.procs.append(subprocess.Popen(
                argv, env={**os.environ, "BENCH_MARKS": str(MARKS), **env}, cwd=HERE,
                stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
                start_new_session=True))
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self.log.close()

    @property
    def trees(self) -> list[list[int]]:
        return [children(p.pid) for p in self.procs]

    def check(self) -> None:
        for p in self.procs:
            if p.poll() is not None:
                raise RuntimeError(f"worker {p.pid} exited with {p.returncode}; see "
                                   f"{self.log_path}:\n{self.tail()}")

    def tail(self, lines: int = 15) -> str:
        self.log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, grace: float = 20.0) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for p in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(max(0.1, deadline - time.monotonic()))
        for p in self.procs:  # the process groups we started (start_new_session), by id
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, signal.SIGKILL)
            if p.poll() is None:
                p.wait(5)


class Sampler:
    """Peak connections per worker process tree: PostgreSQL ones counted in pg_stat_activity
    (matched by client port), Redis ones from the process's own sockets."""

    def __init__(self, store: str):
        self.store = store
        self.peak = 0
        self.conn = None
        if store == "postgresql":
            import psycopg

            self.conn = psycopg.connect(pg_url("postgres"), autocommit=True)
        self.last = 0.0

    def sample(self, workers: Workers, every: float = 0.25) -> None:
        if self.store == "sqlite" or time.monotonic() - self.last < every:
            return
        self.last = time.monotonic()
        for tree in workers.trees:
            if self.store == "postgresql":
                ports = local_ports_to(tree, PG_PORT)
                n = self.conn.execute("SELECT count(*) FROM pg_stat_activity "
                                      "WHERE client_port = ANY(%s)", [list(ports)]).fetchone()[0]
            else:
                n = len(local_ports_to(tree, REDIS_PORT))
            self.peak = max(self.peak, n)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


# --- the contender interface -------------------------------------------------------------------

class Contender:
    """One queue on one store. Subclasses fill in the hooks; the workloads below use them."""

    name = "?"
    store = "postgresql"  # or "sqlite", "redis": which connections the sampler counts
    python = sys.executable
    bulk_api: str | None = None  # the name of the bulk enqueue call, None when there is none
    concurrency_in_process = True  # False: one job at a time per process (c=N: N processes)
    retries = True
    cron: str | None = "every second"  # or "every minute", None (no periodic jobs)
    notes: list[str] = []

    def version(self) -> str:
        raise NotImplementedError

    def setup(self) -> None:
        """Create the database and schema if missing (idempotent, every driver run)."""

    def reset(self) -> None:
        """Empty the queue: no job, no result, no history."""
        raise NotImplementedError

    def enqueue(self, kind: str, payload: dict) -> None:
        raise NotImplementedError

    def enqueue_each(self, kind: str, payloads: Sequence[dict]) -> None:
        """One call per job, each its own transaction."""
        for payload in payloads:
            self.enqueue(kind, payload)

    def enqueue_many(self, kind: str, payloads: Sequence[dict]) -> None:
        raise Unsupported("no bulk enqueue API")

    def seed(self, jobs: Sequence[tuple[str, dict]]) -> None:
        """Untimed set-up: enqueue ``jobs`` in order (bulk where possible, runs of one kind)."""
        run: list[dict] = []
        for i, (kind, payload) in enumerate(jobs):
            run.append(payload)
            if i + 1 == len(jobs) or jobs[i + 1][0] != kind:
                if self.bulk_api:
                    for start in range(0, len(run), 5000):
                        self.enqueue_many(kind, run[start:start + 5000])
                else:
                    self.enqueue_each(kind, run)
                run = []

    def analyze(self) -> None:
        """Refresh the planner's statistics after seeding (``ANALYZE``), as a database in
        steady state has them: after a TRUNCATE and a bulk load a planner without statistics
        can pick a plan that scans the whole queue for every claim."""

    def worker(self, concurrency: int, *, cron: bool = False) -> tuple[list[str], dict]:
        """argv and environment of one worker process running ``concurrency`` jobs at once."""
        raise NotImplementedError

    def extra_processes(self, *, cron: bool) -> list[tuple[list[str], dict]]:
        """Processes the contender needs beside its workers (Celery's beat for cron)."""
        return []

    def finished(self) -> int:
        """How many jobs have finished (succeeded or failed for good), from the queue's state."""
        raise NotImplementedError

    def verify(self, expected: dict[str, int]) -> dict[str, Any]:
        """Check from the queue's own state that each job ran exactly once.

        ``expected`` maps kinds to job counts. Returns ``{"ok": bool, "how": str, ...}``.
        """
        raise NotImplementedError

    def queue_span(self) -> tuple[float, float] | None:
        """The first start and the last finish (epoch seconds) from the queue's own
        timestamps, when it keeps them; None when it does not. ``--baseline`` compares
        edgejobs with itself by this span: the harness's 0.1 s polling is no part of it."""
        return None

    def before_stop(self, workers: Workers) -> dict[str, Any]:
        """Read anything the workers must be alive for (Celery's stats). Default: nothing."""
        return {}

    def close(self) -> None:
        pass


# --- marks -------------------------------------------------------------------------------------

def reset_marks() -> None:
    MARKS.parent.mkdir(parents=True, exist_ok=True)
    MARKS.write_text("")


def read_marks() -> list[list[str]]:
    try:
        return [line.split() for line in MARKS.read_text().splitlines() if line.strip()]
    except FileNotFoundError:
        return []


def wait_for(predicate, timeout: float, workers: Workers | None = None,
             sampler: Sampler | None = None, every: float = 0.1) -> float:
    """Poll ``predicate`` until true; returns the time (time.time()) it first was."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return time.time()
        if workers is not None:
            workers.check()
            if sampler is not None:
                sampler.sample(workers)
        if time.monotonic() > deadline:
            raise TimeoutError(f"not done after {timeout:.0f}s")
        time.sleep(every)


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def processes_for(c: Contender, concurrency: int, processes: int) -> tuple[int, int]:
    """(processes, in-process concurrency): N single-job processes where c=N can't be threads."""
    if concurrency > 1 and not c.concurrency_in_process:
        return processes * concurrency, 1
    return processes, concurrency


# --- workloads ---------------------------------------------------------------------------------

def w1_enqueue(c: Contender, n: int, bulk: bool) -> dict[str, Any]:
    """W1: ``n`` no-op jobs, one call each (each its own transaction), or the bulk call."""
    c.reset()
    payloads = [{} for _ in range(n)]
    c.enqueue("noop", {})  # warm the connection up
    started = time.perf_counter()
    if bulk:
        c.enqueue_many("noop", payloads)
    else:
        c.enqueue_each("noop", payloads)
    elapsed = time.perf_counter() - started
    return {"rate": n / elapsed, "seconds": elapsed, "api": c.bulk_api if bulk else "single"}


def w2_drain(c: Contender, n: int, concurrency: int, processes: int,
             timeout: float = 600) -> dict[str, Any]:
    """W2: ``n`` queued no-ops drained by fresh workers; the clock starts when the first job
    (a ``mark`` enqueued ahead of them) starts and stops when the queue says all finished."""
    if concurrency > 1 and processes == 1 and not c.concurrency_in_process:
        raise Unsupported("one job at a time per worker process")
    phases = {"begin": time.time()}
    c.reset()
    reset_marks()
    c.seed([("mark", {"t": 0})] + [("noop", {})] * n)
    c.analyze()
    sampler = Sampler(c.store)
    specs = [c.worker(concurrency) for _ in range(processes)]
    phases["seeded"] = time.time()
    with Workers(specs, f"{c.name}-w2-c{concurrency}-p{processes}") as workers:
        ended = wait_for(lambda: c.finished() >= n + 1, timeout, workers, sampler)
        rss = [peak_rss_mib(tree) for tree in workers.trees]
        extra = c.before_stop(workers)
        phases["drained"] = time.time()
    phases["stopped"] = time.time()
    sampler.close()
    started = float(next(m for m in read_marks() if m[:2] == ["start", "mark"])[-1])
    check = c.verify({"mark": 1, "noop": n})
    check.update(extra)
    span = c.queue_span()
    if span is not None:
        check["queue_rate"] = n / (span[1] - span[0])
    phases.update(started=started, verified=time.time())
    overhead = {"seed_s": phases["seeded"] - phases["begin"],
                "startup_s": started - phases["seeded"],
                "stop_s": phases["stopped"] - phases["drained"],
                "verify_s": phases["verified"] - phases["stopped"]}
    return {"rate": n / (ended - started), "seconds": ended - started,
            "rss_mib": max(rss), "connections": sampler.peak if c.store != "sqlite" else None,
            "processes": processes, "concurrency": concurrency,
            "overhead": {k: round(v, 2) for k, v in overhead.items()}, **check}


def w3_latency(c: Contender, n: int, gap: float, concurrency: int,
               timeout: float = 120) -> dict[str, Any]:
    """W3: an idle worker; ``n`` jobs enqueued ``gap`` seconds apart; start - enqueue."""
    procs, conc = processes_for(c, concurrency, 1)
    c.reset()
    c.analyze()
    reset_marks()
    specs = [c.worker(conc) for _ in range(procs)]
    with Workers(specs, f"{c.name}-w3") as workers:
        c.enqueue("mark", {"t": 0})  # ready when this one has run
        wait_for(lambda: len(read_marks()) >= 1, timeout, workers, every=0.05)
        time.sleep(0.5)  # idle
        begin = time.monotonic()
        for i in range(n):
            delay = begin + i * gap - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            c.enqueue("mark", {"t": repr(time.time())})
        wait_for(lambda: len(read_marks()) >= n + 1, timeout, workers, every=0.05)
    lat = [(float(m[3]) - float(m[2])) * 1000 for m in read_marks() if float(m[2]) > 0]
    return {"p50_ms": percentile(lat, 0.5), "p99_ms": percentile(lat, 0.99),
            "max_ms": max(lat), "count": len(lat), "processes": procs, "concurrency": conc}


def mix(n: int, seed: int = 8) -> list[str]:
    """W4's jobs: 20% sleep 50 ms, 5% fail once then succeed on retry, the rest quick."""
    kinds = ["sleep"] * (n // 5) + ["flaky"] * (n // 20)
    kinds += ["quick"] * (n - len(kinds))
    random.Random(seed).shuffle(kinds)
    return kinds


def w4_mix(c: Contender, n: int, concurrency: int, timeout: float = 600) -> dict[str, Any]:
    """W4: the mix, queued, drained by one worker (N processes where c can't be threads),
    with a cron schedule ticking (every second where the contender can, else every minute)."""
    procs, conc = processes_for(c, concurrency, 1)
    kinds = mix(n)
    expected_ok = n if c.retries else n - kinds.count("flaky")
    c.reset()
    reset_marks()
    c.seed([(k, {}) for k in kinds])
    c.analyze()
    specs = [c.worker(conc, cron=True) for _ in range(procs)] + c.extra_processes(cron=True)
    with Workers(specs, f"{c.name}-w4") as workers:
        def all_done() -> bool:
            return sum(1 for m in read_marks() if m[0] == "done") >= expected_ok

        def settled() -> bool:
            return c.finished() >= n

        wait_for(all_done, timeout, workers, every=0.05)
        wait_for(settled, 60, workers, every=0.05)
        extra = c.before_stop(workers)
    marks = read_marks()
    starts = Counter(m[1] for m in marks if m[0] == "start")
    begin = min(float(m[-1]) for m in marks if m[0] == "start")
    end = max(float(m[-1]) for m in marks if m[0] == "done")
    ticks = [float(m[-1]) for m in marks if m[0] == "tick" and begin <= float(m[-1]) <= end]
    runs_expected = {"quick": kinds.count("quick"), "sleep": kinds.count("sleep"),
                     "flaky": kinds.count("flaky") * (2 if c.retries else 1)}
    check = c.verify({"mix": n, **{k: kinds.count(k) for k in ("quick", "sleep", "flaky")}})
    runs_ok = all(starts[k] == v for k, v in runs_expected.items())
    check.update(extra)
    check["ok"] = bool(check.get("ok")) and runs_ok
    check["runs"] = dict(starts)
    return {"seconds": end - begin, "rate": n / (end - begin), "ticks": len(ticks),
            "cron": c.cron, "processes": procs, "concurrency": conc, **check}


WORKLOADS = {"w1": w1_enqueue, "w2": w2_drain, "w3": w3_latency, "w4": w4_mix}


def main(contender: Contender, workload: str, params: dict[str, Any]) -> None:
    """Run one workload and print ``RESULT {json}`` (errors become ``{"error": ...}``)."""
    OUT.mkdir(parents=True, exist_ok=True)
    try:
        if workload == "info":
            contender.setup()
            result: dict[str, Any] = {
                "version": contender.version(), "bulk_api": contender.bulk_api,
                "concurrency_in_process": contender.concurrency_in_process,
                "retries": contender.retries, "cron": contender.cron, "notes": contender.notes}
        else:
            contender.setup()
            result = WORKLOADS[workload](contender, **params)
    except Unsupported as e:
        result = {"unsupported": str(e)}
    except Exception as e:  # reported in the results, the run goes on
        import traceback

        traceback.print_exc()
        result = {"error": f"{type(e).__name__}: {e}"}
    finally:
        contender.close()
    print("RESULT " + json.dumps(result), flush=True)


def median_spread(values: Sequence[float]) -> tuple[float, float, float]:
    return statistics.median(values), min(values), max(values)
