"""Fault rows of issue 15 that need no special network: handlers raising a ``BaseException``
(row 21), hostile strings (row 22), and a long soak with memory and connection counts
(row 23), each through real ``runworker`` processes, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from django.db import connection
from qa.models import Run

from django_edgejobs import InvalidPayload, enqueue, enqueue_many, get_job
from django_edgejobs.models import Job
from tests.acceptance.faults.conftest import fast_settings, scale
from tests.conftest import wait_for

pytestmark = [pytest.mark.acceptance, pytest.mark.fault]

FAST = fast_settings()
BAD_NAME = os.fsdecode(b"report-\xff.csv")  # a lone surrogate, as a non-UTF-8 file name gives


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def database_connections() -> int | None:
    """Other sessions on the test database (PostgreSQL), or None (SQLite)."""
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                       " AND pid <> pg_backend_pid()")
        return cursor.fetchone()[0]


def test_21_base_exception_handlers_fail_their_attempt_and_the_burst_ends(workers, ledger,
                                                                          record):
    """``asyncio.CancelledError`` (also from ``async def``), ``GeneratorExit`` and a custom
    ``BaseException``: each fails its attempt (no job stranded ``processing`` under a live
    worker) and the retry completes; ``--burst`` exits 0."""
    per_kind = scale(10, 100)
    specs = [{"type": "qa.base_exception", "payload": {"kind": kind}}
             for kind in ("cancelled", "generator_exit", "custom") for _ in range(per_kind)]
    specs += [{"type": "qa.base_exception_async", "payload": {}} for _ in range(per_kind)]
    ids = [j.id for j in enqueue_many(specs)]
    started = time.monotonic()
    procs = [workers.start("--burst", "--concurrency", "4", edgejobs=FAST) for _ in range(2)]
    for proc in procs:
        assert proc.wait(120) == 0, workers.output(proc)
    verdict = ledger.verdict(ids)
    attempts = dict(Job.objects.filter(id__in=ids).values_list("id", "attempts"))
    first_errors = {h[0]["exception"]
                    for (h,) in Job.objects.filter(id__in=ids).values_list("error_history")}
    record("21. BaseException handlers (CancelledError, async too; GeneratorExit; custom)",
           **verdict, seconds=round(time.monotonic() - started, 1),
           jobs_at_attempt_2=sum(1 for a in attempts.values() if a == 2))
    assert verdict == {"jobs": len(ids), "lost": 0, "duplicated": 0, "stuck": 0}
    assert set(attempts.values()) == {2}
    assert first_errors == {"asyncio.exceptions.CancelledError", "builtins.GeneratorExit",
                            "qa.jobs.QaBaseException"}


def test_22_hostile_strings_are_refused_named_or_stored_escaped(workers, ledger, record):
    """Lone surrogates in a payload key or value, a tag or an idempotency key are refused
    before anything is written, naming the place; a handler error holding one (and a NUL)
    keeps its retry and its text, escaped."""
    refused = 0
    for bad in ({"payload": {"name": BAD_NAME}}, {"payload": {BAD_NAME: 1}},
                {"tags": [BAD_NAME]}, {"idempotency_key": BAD_NAME}):
        before = Job.objects.count()
        with pytest.raises(ValueError, match="lone surrogate"):  # InvalidPayload for payloads
            enqueue("qa.hostile", **{"payload": {"name": "x"}, **bad})
        assert Job.objects.count() == before
        refused += 1
    with pytest.raises(InvalidPayload):
        enqueue_many([{"type": "qa.hostile", "payload": {"name": "ok"}},
                      {"type": "qa.hostile", "payload": {"name": BAD_NAME}}])
    refused += 1
    n = scale(20, 200)
    ids = [j.id for j in enqueue_many([{"type": "qa.hostile",
                                        "payload": {"name": f"café ☕ 𝄞 {i}"}}
                                       for i in range(n)])]
    proc = workers.start("--burst", "--concurrency", "4", edgejobs=FAST)
    assert proc.wait(120) == 0, workers.output(proc)
    verdict = ledger.verdict(ids)
    sample = get_job(ids[0])
    escaped = sum(1 for (h,) in Job.objects.filter(id__in=ids).values_list("error_history")
                  if "report-\\udcff.csv \\x00 \U0001d11e" in h[0]["error"])
    record("22. hostile strings (lone surrogates, NUL)", **verdict, refused_at_enqueue=refused,
           errors_stored_escaped=escaped)
    assert verdict == {"jobs": n, "lost": 0, "duplicated": 0, "stuck": 0}
    assert sample.attempts == 2 and sample.result["name"].startswith("café ☕ 𝄞")
    assert escaped == n


def test_23_soak_memory_and_connections_stay_flat(workers, ledger, record):
    """A steady feed through two long-running workers (scheduler and supervisor on, DEBUG
    off): 0 lost, 0 twice; each worker's resident memory and the database's session count
    are sampled, and the sessions stay within the documented budget (concurrency + 6 per
    worker)."""
    total, chunk = scale((6000, 1000), (100_000, 5000))
    concurrency = 4
    # DEBUG off, as in production: under DEBUG Django keeps 9,000 queries per connection,
    # and the workers grew 22-50 MiB (runworker warns about it).
    procs = [workers.start("--concurrency", str(concurrency), edgejobs=FAST,
                           env={"DJANGO_DEBUG": "0"}) for _ in range(2)]
    wait_for(lambda: all("queues=" in workers.output(p) for p in procs), timeout=60,
             message="workers started")
    ids: list = []
    rss: dict[int, list[int]] = {p.pid: [] for p in procs}
    sessions: list[int] = []
    started = time.monotonic()
    while len(ids) < total:
        ids += [j.id for j in enqueue_many([{"type": "qa.work", "payload": {}}
                                            for _ in range(chunk)])]
        target = len(ids) - chunk // 2
        wait_for(lambda t=target: Run.objects.filter(phase="done").count() >= t,
                 timeout=300, message="the workers keep up")
        for p in procs:
            rss[p.pid].append(rss_kib(p.pid))
        count = database_connections()
        if count is not None:
            sessions.append(count)
    wait_for(lambda: not Job.objects.filter(id__in=ids).exclude(status="completed").exists(),
             timeout=300, message="all completed")
    seconds = time.monotonic() - started
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        assert p.wait(60) == 0, workers.output(p)
    verdict = ledger.verdict(ids)
    # Memory after the first tenth of the run (imports done, caches warm) against the end.
    warm = max(1, len(rss[procs[0].pid]) // 10)
    growth = max((r[-1] - r[warm - 1]) // 1024 for r in rss.values())
    budget = 2 * (concurrency + 6)
    record("23. soak: steady feed, two workers", **verdict,
           jobs_per_second=round(total / seconds),
           rss_start_mib=[r[0] // 1024 for r in rss.values()],
           rss_end_mib=[r[-1] // 1024 for r in rss.values()], rss_growth_mib=growth,
           max_sessions=max(sessions) if sessions else "n/a (SQLite)", session_budget=budget)
    assert verdict == {"jobs": total, "lost": 0, "duplicated": 0, "stuck": 0}
    if sessions:
        assert max(sessions) <= budget + 2  # + the test's own second connection, if any
    assert growth < scale(24, 32), rss  # MiB: a leak of 300 bytes a job would show here
