"""django-edgejobs against its peers, on this machine, in one run (issue #8).

    make bench                                   # or:
    .venv/bin/python benchmarks/peer_bench.py [--quick] [--only pgqueuer,celery-redis]
        [--reps 3] [--skip-sqlite] [--skip-ceiling] [--output docs/benchmarks.md]

The peers live in their own virtual environment, ``benchmarks/.peers-venv`` (built here from
``benchmarks/peerbench/requirements.txt`` with the Python of ``scripts/find-python``, rebuilt
when that file changes); edgejobs runs from the project's ``.venv`` against this checkout.
Every contender uses the same PostgreSQL (its own ``bench_*`` database, created here) and
Redis (db 9, and db 10 for Celery's results; only those are flushed).

Each repetition runs every workload for every contender back to back, in an order that
rotates between repetitions, so a ratio compares numbers taken minutes apart at most. The
report gives medians with min-max, and each peer's ratio to edgejobs from the same repetition.
Workloads are described in ``peerbench/harness.py``, the pgbench ceiling in
``peerbench/ceiling.py``. Not a test: nothing asserts on time, and ``make test`` never runs it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PEERS = HERE / "peerbench"
VENV = HERE / ".peers-venv"
OUT = HERE / ".out"
sys.path.insert(0, str(PEERS))

import ceiling  # noqa: E402
import report  # noqa: E402

MAIN_PY = ROOT / ".venv" / "bin" / "python"
PEER_PY = VENV / "bin" / "python"

# name: (section, runs with the project's venv?)
CONTENDERS = {
    "edgejobs-pg": ("postgresql", True),
    "edgejobs-pg-b50": ("postgresql", True),
    "pgqueuer": ("postgresql", False),
    "procrastinate": ("postgresql", False),
    "django-tasks-db-pg": ("postgresql", False),
    "celery-redis": ("postgresql", False),
    "huey-pg": ("postgresql", False),
    "huey-redis": ("postgresql", False),
    "edgejobs-sqlite": ("sqlite", True),
    "edgejobs-sqlite-b50": ("sqlite", True),
    "huey-sqlite": ("sqlite", False),
    "django-tasks-db-sqlite": ("sqlite", False),
    # edgejobs at another commit (--baseline REF)
    "before-pg": ("postgresql", True),
    "before-sqlite": ("sqlite", True),
}
BEFORE = {"before-pg", "before-sqlite"}
#: edgejobs with ``--batch-size 50``: drains only (W2).
BATCHED = {"edgejobs-pg-b50", "edgejobs-sqlite-b50"}
BASELINE = {"postgresql": "edgejobs-pg", "sqlite": "edgejobs-sqlite"}
REDIS_ONES = {"celery-redis", "huey-redis"}


def cases(quick: bool, scale: int = 1) -> list[tuple[str, str, dict]]:
    n1, n2, n3, n4 = (500, 1000, 50, 300) if quick else (5000, 10_000, 200, 1000)
    n1, n2 = n1 * scale, n2 * scale  # enqueue and drain: long enough to time within 1%
    return [
        ("w1-single", "w1", {"n": n1, "bulk": False}),
        ("w1-bulk", "w1", {"n": n1, "bulk": True}),
        ("w2-c1", "w2", {"n": n2, "concurrency": 1, "processes": 1}),
        ("w2-c4", "w2", {"n": n2, "concurrency": 4, "processes": 1}),
        ("w2-p2", "w2", {"n": n2, "concurrency": 1, "processes": 2}),
        ("w3", "w3", {"n": n3, "gap": 0.02, "concurrency": 4}),
        ("w4", "w4", {"n": n4, "concurrency": 4}),
    ]


# --- environment -------------------------------------------------------------------------------

def python_version(python: str | Path) -> str:
    return subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                          capture_output=True, text=True, check=False).stdout.strip()


def find_python() -> str:
    """scripts/find-python's interpreter when it is the version .venv was built with (it is,
    when .venv came from `make venv`), else the interpreter .venv was built from."""
    found = subprocess.run([ROOT / "scripts" / "find-python"], capture_output=True, text=True,
                           check=False).stdout.strip()
    if found and python_version(found) == python_version(MAIN_PY):
        return found
    return subprocess.run([MAIN_PY, "-c", "import sys; print(sys._base_executable)"],
                          capture_output=True, text=True, check=True).stdout.strip()


def ensure_peers_venv() -> None:
    requirements = PEERS / "requirements.txt"
    stamp = VENV / ".installed"
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest and PEER_PY.exists():
        return
    python = find_python()
    print(f"building {VENV.relative_to(ROOT)} with {python} (peers: {requirements.name})",
          flush=True)
    if not PEER_PY.exists():
        subprocess.run([python, "-m", "venv", VENV], check=True)
    pip = [PEER_PY, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    subprocess.run([*pip, "install", "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "install", "-r", requirements], check=True)
    stamp.write_text(digest)


def export(ref: str) -> Path:
    """The package and test project at ``ref``, exported from git (once per commit)."""
    sha = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", ref], capture_output=True,
                         text=True, check=True).stdout.strip()
    tree = OUT / f"before-{sha}"
    if not (tree / "django_edgejobs").is_dir():
        tree.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "-C", ROOT, "archive", sha, "django_edgejobs",
                                  "testproject"], capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", tree], input=archive, check=True)
    return tree


def redis_up() -> bool:
    import redis

    try:
        return bool(redis.Redis(host="127.0.0.1", port=6379, socket_timeout=2).ping())
    except redis.RedisError:
        return False


def machine() -> dict:
    import psycopg
    import redis

    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kib = int(f.readline().split()[1])
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres") as conn:
        pg = conn.execute("SHOW server_version").fetchone()[0]
        pg_settings = dict(conn.execute(
            "SELECT name, setting FROM pg_settings WHERE name IN ('shared_buffers', "
            "'synchronous_commit', 'max_connections', 'fsync')").fetchall())
    try:
        rv = redis.Redis(host="127.0.0.1", port=6379, socket_timeout=2).info()["redis_version"]
    except redis.RedisError:
        rv = "not running"
    py = {name: subprocess.run([exe, "-c", "import platform; print(platform.python_version())"],
                               capture_output=True, text=True, check=True).stdout.strip()
          for name, exe in (("main", MAIN_PY), ("peers", PEER_PY))}
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True, check=False).stdout.strip()
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--", "django_edgejobs"],
                           capture_output=True, text=True, check=False).stdout.strip()
    return {"cpus": os.cpu_count(), "cpu": cpu, "mem_gib": round(mem_kib / 1024 / 1024, 1),
            "kernel": platform.release(), "postgresql": pg, "pg_settings": pg_settings,
            "redis": rv, "python": py["main"], "python_peers": py["peers"],
            "pgbench": subprocess.run([ceiling.pgbench(), "--version"], capture_output=True,
                                      text=True, check=False).stdout.strip(),
            "commit": commit + (" (django_edgejobs modified)" if dirty else ""),
            "started": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "load_start": os.getloadavg()}


# --- running -----------------------------------------------------------------------------------

def drive(name: str, workload: str, params: dict | None = None, timeout: float = 1500) -> dict:
    python = MAIN_PY if CONTENDERS[name][1] else PEER_PY
    argv = [python, PEERS / "drive.py", name, workload, json.dumps(params or {})]
    env = {**os.environ, "BENCH_OUT": str(OUT), "PYTHONDONTWRITEBYTECODE": "1"}
    child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=env, cwd=PEERS)
    try:
        stdout, stderr = child.communicate(timeout=timeout)
    except BaseException as e:  # a timeout, Ctrl-C, SIGTERM: the driver stops its workers
        child.terminate()
        try:
            child.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
        if isinstance(e, subprocess.TimeoutExpired):
            return {"error": f"driver timed out after {timeout:.0f}s"}
        raise
    for line in reversed(stdout.splitlines()):
        if line.startswith("RESULT "):
            result = json.loads(line[7:])
            if "error" in result:
                (OUT / "logs").mkdir(parents=True, exist_ok=True)
                (OUT / "logs" / f"{name}-{workload}-error.log").write_text(stderr)
            return result
    return {"error": f"driver exit {child.returncode}: {stderr.strip()[-300:]}"}


def brief(case: str, result: dict) -> str:
    if "unsupported" in result:
        return f"n/a ({result['unsupported']})"
    if "error" in result:
        return f"ERROR {result['error'][:200]}"
    if case == "w3":
        return f"p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms"
    text = f"{result['rate']:,.0f} jobs/s"
    if result.get("queue_rate"):
        text += f" (by the jobs' times {result['queue_rate']:,.0f}/s)"
    if "ok" in result:
        text += " ok" if result["ok"] else f" NOT VERIFIED {result.get('states')}"
    return text


def applicable(name: str, case: str, info: dict) -> bool:
    if name in BATCHED:
        return case.startswith("w2")
    if case == "w1-bulk" and not info.get("bulk_api"):
        return False
    return not (case == "w2-c4" and not info.get("concurrency_in_process"))


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind: stop the running driver
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="smaller workloads and one repetition (a smoke run, ~5 min)")
    parser.add_argument("--reps", type=int, help="repetitions (default 3; 1 with --quick)")
    parser.add_argument("--only", help="comma-separated peers to run (edgejobs always runs; "
                        "'none' for no peer): " + ", ".join(
                            n for n in CONTENDERS if not n.startswith("edgejobs")
                            and n not in BEFORE))
    parser.add_argument("--scale", type=int, default=1, metavar="K",
                        help="K times the jobs enqueued (w1) and drained (w2): --baseline "
                             "runs compare within a few percent only when each case lasts "
                             "seconds (try 4)")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--skip-ceiling", action="store_true")
    parser.add_argument("--output", default=str(ROOT / "docs" / "benchmarks.md"))
    parser.add_argument("--chart", default=str(ROOT / "docs" / "images" / "benchmarks.png"))
    parser.add_argument("--baseline", metavar="REF",
                        help="also run edgejobs at this commit (exported from git) in the same "
                             "run, and write benchmarks/.out/before-after.md: now / before")
    parser.add_argument("--render", action="store_true", help="only rewrite the page and the "
                        "chart from the last run's benchmarks/.out/results.json")
    args = parser.parse_args()
    if args.render:
        write(json.loads((OUT / "results.json").read_text()), Path(args.output),
              Path(args.chart))
        return
    reps = args.reps or (1 if args.quick else 3)
    started = time.monotonic()

    ensure_peers_venv()
    OUT.mkdir(parents=True, exist_ok=True)
    names = [n for n in CONTENDERS if n not in BEFORE or args.baseline]
    if args.baseline:
        os.environ["BENCH_BEFORE_ROOT"] = str(export(args.baseline))
    if args.only:
        wanted = {n.strip() for n in args.only.split(",") if n.strip()} - {"none"}
        unknown = wanted - set(CONTENDERS)
        if unknown:
            parser.error(f"unknown contender(s): {', '.join(sorted(unknown))}")
        names = [n for n in names if n.startswith("edgejobs") or n in BEFORE or n in wanted]
    if args.skip_sqlite:
        names = [n for n in names if CONTENDERS[n][0] != "sqlite"]
    skipped = {}
    if not redis_up():
        skipped.update({n: "Redis is not running" for n in names if n in REDIS_ONES})
        names = [n for n in names if n not in REDIS_ONES]
    if args.quick:
        names = [n for n in names if n not in BATCHED]

    env = machine()
    print(f"{env['cpus']} x {env['cpu']}, PostgreSQL {env['postgresql']}, Redis {env['redis']}, "
          f"Python {env['python']}; load average {env['load_start']}", flush=True)
    info = {}
    for name in names:
        info[name] = drive(name, "info")
        print(f"  {name}: {info[name].get('version') or info[name]}", flush=True)
        if "error" in info[name]:
            skipped[name] = info[name]["error"]
    names = [n for n in names if n not in skipped]

    plan = cases(args.quick, args.scale)
    results: dict = {"machine": env, "info": info, "skipped": skipped, "reps": reps,
                     "quick": args.quick, "scale": args.scale, "cases": {k: p for k, _, p in plan},
                     "runs": {}, "ceiling": {}, "baseline": args.baseline}
    for rep in range(reps):
        for index, (case, workload, params) in enumerate(plan):
            runners = [n for n in names if applicable(n, case, info[n])]
            shift = (rep + index) % len(runners)
            for name in runners[shift:] + runners[:shift]:
                began = time.monotonic()
                result = drive(name, workload, params)
                result["wall_s"] = round(time.monotonic() - began, 1)
                results["runs"].setdefault(case, {}).setdefault(name, []).append(result)
                print(f"[{rep + 1}/{reps}] {case:9} {name:24} {brief(case, result)} "
                      f"({result['wall_s']:.0f} s)", flush=True)
        if not args.skip_ceiling:
            for script, batch, clients in ceiling.CASES:
                key = f"{script}-{batch}-{clients}"
                try:
                    result = ceiling.run(script, batch, clients, 2 if args.quick else 3)
                except Exception as e:  # reported, the run goes on
                    result = {"error": f"{type(e).__name__}: {e}"}
                results["ceiling"].setdefault(key, []).append(result)
                print(f"[{rep + 1}/{reps}] pgbench   {key:24} "
                      f"{result.get('rate', 0):,.0f} jobs/s {result.get('error', '')}", flush=True)
        (OUT / "results.json").write_text(json.dumps(results, indent=1))

    results["machine"]["load_end"] = os.getloadavg()
    results["machine"]["minutes"] = round((time.monotonic() - started) / 60, 1)
    (OUT / "results.json").write_text(json.dumps(results, indent=1))
    if args.baseline:
        (OUT / "before-after.md").write_text(report.before_after(results))
        print((OUT / "before-after.md").read_text(), flush=True)
        return  # a before/after run leaves the peers' page as it is
    write(results, Path(args.output), Path(args.chart))


def write(results: dict, output: Path, chart: Path) -> None:
    """The page and its chart (drawn with the peers' venv's matplotlib)."""
    chart.parent.mkdir(parents=True, exist_ok=True)
    drawn = subprocess.run([PEER_PY, PEERS / "chart.py", OUT / "results.json", chart],
                           capture_output=True, text=True, check=False)
    if drawn.returncode != 0:
        print(f"chart failed: {drawn.stderr[-500:]}", flush=True)
    output.write_text(report.render(results, os.path.relpath(chart, output.parent)
                                    if drawn.returncode == 0 else None))
    print(f"wrote {output} and {chart} ({results['machine'].get('minutes')} min run)", flush=True)


if __name__ == "__main__":
    main()
