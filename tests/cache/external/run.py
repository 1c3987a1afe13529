"""Run Django's and django-redis's own cache test suites against the edge cache backends.

    .venv/bin/python tests/cache/external/run.py [django] [django-redis]   (default: both)

- Downloads the source distributions of the *installed* Django and django-redis with
  ``pip download --no-binary :all: --no-deps`` into ``.cache/external/`` (git-ignored by the
  ``.cache/.gitignore`` this script writes) and unpacks their tests. Nothing third-party is
  committed.
- Starts a private redis-server (port ``EDGE_EXT_REDIS_PORT``, default 6399, plus a unix
  socket) and a Sentinel (``EDGE_EXT_SENTINEL_PORT``, default 26399), so the suites'
  ``FLUSHDB``s never touch a shared Redis. Needs ``redis-server`` on PATH.
- Django: ``BaseCacheTests`` (tests/cache/tests.py, the generic tests every built-in backend
  passes) on DatabaseEdgeCache (with the database of ``DATABASE_URL``, SQLite by default) and
  on RedisEdgeCache. See ``django_suite_tests.py``.
- django-redis: its whole pytest suite, every settings variant (default, herd, sharding,
  sentinel, unix socket, json, msgpack, gzip/lz4/zlib/zstd), with the BACKEND of every cache
  replaced by ``django_edgejobs.cache.RedisEdgeCache`` and the ports by the private ones. The
  extra packages it needs (pytest-mock, lz4, msgpack, pyzstd) go into ``.cache/external/venv``,
  a venv layered over the project's, never into the project's venv.

Prints one summary line per suite and exits non-zero when a suite fails.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
CACHE = ROOT / ".cache"
WORK = CACHE / "external"
HERE = Path(__file__).resolve().parent
REDIS_PORT = int(os.environ.get("EDGE_EXT_REDIS_PORT", "6399"))
SENTINEL_PORT = int(os.environ.get("EDGE_EXT_SENTINEL_PORT", "26399"))
SOCKET = WORK / "redis.sock"
# EDGE_EXT_BASELINE=1: keep the suites' own backends (plain django-redis), for comparison.
BASELINE = int(os.environ.get("EDGE_EXT_BASELINE", "0") == "1")
EXTRA_PACKAGES = ["pytest-mock", "lz4", "msgpack", "pyzstd"]


def sh(*args: str | Path, **kwargs: object) -> subprocess.CompletedProcess[str]:
    print("+", " ".join(map(str, args)), flush=True)
    return subprocess.run([str(a) for a in args], check=True, text=True, **kwargs)  # type: ignore[call-overload]


def fetch(dist: str) -> Path:
    """Unpacked sdist of the installed version of ``dist``."""
    ver = version(dist)
    WORK.mkdir(parents=True, exist_ok=True)
    (CACHE / ".gitignore").write_text("*\n")
    stem = f"{dist.replace('-', '_')}-{ver}" if dist == "django-redis" else f"{dist}-{ver}"
    folder = WORK / stem
    if not folder.exists():
        archives = list(WORK.glob(f"{stem}.tar.gz")) + list(WORK.glob(f"{stem.lower()}.tar.gz"))
        if not archives:
            sh(sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps",
               "--quiet", f"{dist}=={ver}", "-d", WORK)
            archives = list(WORK.glob(f"{stem}.tar.gz")) + list(WORK.glob(f"{stem.lower()}.tar.gz"))
        with tarfile.open(archives[0]) as tar:
            members = [m for m in tar.getmembers()
                       if dist != "django" or "/tests/" in m.name or m.name.endswith("/tests")]
            tar.extractall(WORK, members=members, filter="data")
    return folder


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


def start_servers() -> list[subprocess.Popen[bytes]]:
    WORK.mkdir(parents=True, exist_ok=True)  # a fresh clone has no .cache/ yet
    server = shutil.which("redis-server")
    if not server:
        raise SystemExit("redis-server is not on PATH (apt-get install redis-server)")
    SOCKET.unlink(missing_ok=True)
    procs = [subprocess.Popen([server, "--port", str(REDIS_PORT), "--bind", "127.0.0.1",
                               "--unixsocket", str(SOCKET), "--unixsocketperm", "700",
                               "--save", "", "--appendonly", "no", "--databases", "16"],
                              stdout=subprocess.DEVNULL)]
    wait_port(REDIS_PORT)
    conf = WORK / "sentinel.conf"
    conf.write_text(
        f"port {SENTINEL_PORT}\nbind 127.0.0.1\ndir {WORK}\n"
        + "".join(f"sentinel monitor {name} 127.0.0.1 {REDIS_PORT} 1\n"
                  f"sentinel down-after-milliseconds {name} 60000\n"
                  for name in ("127.0.0.1", "default_service")))
    procs.append(subprocess.Popen([server, str(conf), "--sentinel"], stdout=subprocess.DEVNULL))
    wait_port(SENTINEL_PORT)
    time.sleep(1.0)  # let the Sentinel discover its masters
    return procs


def layered_venv() -> Path:
    """A venv that sees the project's packages plus the django-redis test extras."""
    venv = WORK / "venv"
    python = venv / "bin" / "python"
    if not python.exists():
        sh(sys.executable, "-m", "venv", "--without-pip", venv)
        site = next((venv / "lib").glob("python3.*/site-packages"))
        project_site = next((ROOT / ".venv" / "lib").glob("python3.*/site-packages"))
        # addsitedir also runs the .pth files there (the editable install of this project).
        line = f"import site; site.addsitedir({str(project_site)!r})\n"
        (site / "_project_venv.pth").write_text(line)
        sh(sys.executable, "-m", "pip", "install", "--quiet", "--target", site,
           *EXTRA_PACKAGES)
    return python


def run_django() -> tuple[bool, str]:
    tests = fetch("django") / "tests"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tests), str(HERE), str(ROOT)]),
           "DJANGO_SETTINGS_MODULE": "django_suite_settings",
           "EDGE_EXT_REDIS_URL": f"redis://127.0.0.1:{REDIS_PORT}/0"}
    proc = subprocess.run([sys.executable, "-m", "django", "test", "django_suite_tests",
                           "--verbosity", "1", "--noinput"], env=env, text=True,
                          capture_output=True, cwd=WORK)
    sys.stdout.write(proc.stdout[-20000:])
    sys.stderr.write(proc.stderr[-20000:])
    summary = [line for line in (proc.stdout + proc.stderr).splitlines()
               if line.startswith(("Ran ", "OK", "FAILED", "SUMMARY"))]
    return proc.returncode == 0, " | ".join(summary)


# Failures of django-redis's suite that are bugs of the suite itself: plain django-redis fails
# them identically (EDGE_EXT_BASELINE=1). They are reported, and do not fail the run.
KNOWN_UPSTREAM = {
    "tests/test_backend.py::TestDjangoRedisCache::test_intenum[sqlite_msgpack]":
        "msgpack stores an IntEnum as a plain int; the test expects the enum back",
    "tests/test_client.py::TestClientClose::test_close_disconnect_client_options"
    "[sqlite_sentinel]":
        "an earlier test of the file empties the shared OPTIONS dict (SENTINELS included)",
    "tests/test_client.py::TestClientClose::test_close_disconnect_settings_cache"
    "[sqlite_sentinel]":
        "same: the OPTIONS emptied by test_close_client_disconnect_default",
}

REDIS_SETTING_SUBS = [
    ('"django_redis.cache.RedisCache"', '"django_edgejobs.cache.RedisEdgeCache"'),
    ("127.0.0.1:6379", f"127.0.0.1:{REDIS_PORT}"),
    ('("127.0.0.1", 26379)', f'("127.0.0.1", {SENTINEL_PORT})'),
    ("unix:///tmp/redis.sock", f"unix://{SOCKET}"),
]


def run_django_redis(pytest_args: list[str]) -> tuple[bool, str]:
    source = fetch("django-redis")
    dest = WORK / "django-redis-suite"
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(source / "tests", dest / "tests")
    for path in (dest / "tests" / "settings").glob("*.py"):
        text = path.read_text()
        for old, new in REDIS_SETTING_SUBS[BASELINE:]:
            text = text.replace(old, new)
        path.write_text(text)
    # The suite's own pytest options, without coverage (pytest-cov is not a dependency here).
    (dest / "pytest.ini").write_text(
        "[pytest]\npythonpath = tests\ntestpaths = tests\nxfail_strict = true\n"
        "addopts = -p no:cacheprovider\n")
    python = layered_venv()
    # django-redis's conftest configures Django once per process from the first settings
    # variant it meets, so its xdist run tests fewer variants than it lists, and some of its
    # tests change the shared settings for the tests after them. Run each test file of each
    # variant (and the tests that take none, on the default variant) in a process of its own,
    # two at a time.
    listing = subprocess.run([python, "-m", "pytest", "--collect-only", "-q", *pytest_args],
                             cwd=dest, text=True, capture_output=True, check=True).stdout
    groups: dict[str, list[str]] = {}
    for node in (line for line in listing.splitlines() if "::" in line):
        params = node[node.rfind("[") + 1:-1].split("-") if node.endswith("]") else []
        variant = next((p for p in params if p.startswith("sqlite")), "no-settings")
        groups.setdefault(f"{variant} {node.split('::')[0]}", []).append(node)
    totals: dict[str, int] = {}
    failed_groups: list[str] = []
    known: set[str] = set()
    # Groups of one variant share Redis databases: run them one after another, and two
    # variants at a time (the tests without settings use the default variant's databases).
    chains: dict[str, list[str]] = {}
    for name in sorted(groups):
        variant = name.split()[0].replace("no-settings", "sqlite")
        chains.setdefault(variant, []).append(name)

    def run_group(name: str) -> str:
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
        if name.startswith("no-settings"):
            env["DJANGO_SETTINGS_MODULE"] = "settings.sqlite"
        proc = subprocess.run([python, "-m", "pytest", "-q", "-rfEs", "-n", "0",
                               "-p", "no:django", *pytest_args, *groups[name]], cwd=dest,
                              text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              env=env)
        counts = {word: int(num) for num, word in re.findall(
            r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed)", proc.stdout)}
        for word, num in counts.items():
            totals[word] = totals.get(word, 0) + num
        report = f"  [{name}] {counts}\n"
        if proc.returncode:
            failing = set(re.findall(r"^(?:FAILED|ERROR) (\S+)", proc.stdout, re.MULTILINE))
            if failing and failing <= KNOWN_UPSTREAM.keys():
                known.update(failing)
            else:
                failed_groups.append(name)
            report += proc.stdout[-15000:]
        return report

    def run_chain(names: list[str]) -> str:
        return "".join(run_group(name) for name in names)

    with ThreadPoolExecutor(max_workers=2) as pool:
        for report in pool.map(run_chain, chains.values()):
            sys.stdout.write(report)
    summary = ", ".join(f"{num} {word}" for word, num in sorted(totals.items()))
    summary += f" in {len(groups)} processes"
    if known:
        summary += "; known upstream test bugs (plain django-redis fails them too): " + "; ".join(
            f"{node} ({KNOWN_UPSTREAM[node]})" for node in sorted(known))
    if failed_groups:
        summary += f"; failing: {', '.join(sorted(failed_groups))}"
    return not failed_groups, summary


def main(argv: list[str]) -> int:
    suites = [a for a in argv if not a.startswith("-")] or ["django", "django-redis"]
    extra = [a for a in argv if a.startswith("-")]
    procs = start_servers()
    results = []
    try:
        if "django" in suites:
            results.append(("django " + version("django"), *run_django()))
        if "django-redis" in suites:
            results.append(("django-redis " + version("django-redis"), *run_django_redis(extra)))
    finally:
        for proc in reversed(procs):
            proc.terminate()
            proc.wait(timeout=10)
    print()
    for name, ok, summary in results:
        print(f"{'PASS' if ok else 'FAIL'} {name}: {summary}")
    return 0 if all(ok for _, ok, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
