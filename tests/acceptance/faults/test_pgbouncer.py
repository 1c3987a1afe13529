"""Row 16 (issue 15): workers and enqueuers behind a real PgBouncer, in transaction pooling and
in session pooling, and the wake-ups behind it.

Each scenario starts its own pgbouncer (``pgbouncer.py``) in front of the test database; the
workers (``runworker``) and the enqueuers (``qa_enqueue``) connect through it, the test reads
the ledger directly. A successful job recorded ``failed``, a ``ProgrammingError`` (a prepared
statement the server connection does not have, or has under another client's name) or a job
lost fails the row; duplicates are allowed only among the jobs the killed worker held.
"""

from __future__ import annotations

import json
import random
import signal
import statistics
import time
import uuid
from collections.abc import Callable

import pytest
from django.db import connection  # noqa: F401 (postgres_only's condition is read here)
from django.utils import timezone
from qa.models import Run

from django_edgejobs import enqueue
from django_edgejobs.models import Job, JobEvent
from django_edgejobs.models import Worker as WorkerRow
from tests.acceptance.faults.conftest import fast_settings, postgres_only, scale, until
from tests.acceptance.faults.pgbouncer import PgBouncer, Unavailable
from tests.conftest import wait_for

pytestmark = [pytest.mark.acceptance, pytest.mark.fault, postgres_only]

#: What a statement run on a pooled server connection without its session state raises
#: (``prepared statement "_pg3_0" does not exist`` / ``already exists``, ``bind message
#: supplies 31 parameters, but prepared statement "_pg3_0" requires …``).
SESSION_STATE_ERRORS = ("ProgrammingError", 'prepared statement "')


@pytest.fixture
def pgbouncer(tmp_path, transactional_db):
    """``pgbouncer(pool_mode, pool_size)`` starts one; skips when pgbouncer cannot run here."""
    started: list[PgBouncer] = []

    def start(pool_mode: str, pool_size: int) -> PgBouncer:
        bouncer = PgBouncer(pool_mode, pool_size=pool_size)
        try:
            bouncer.start()
        except Unavailable as exc:
            pytest.skip(str(exc))
        started.append(bouncer)
        return bouncer

    yield start
    for n, bouncer in enumerate(started):
        bouncer.stop(keep_log=tmp_path / f"pgbouncer-{n}.log")


def _finished(job_ids) -> bool:
    return not Job.objects.filter(id__in=job_ids).exclude(
        status__in=("completed", "failed", "cancelled")).exists()


def _enqueued(workers, proc) -> dict:
    """The JSON line a ``qa_enqueue`` process printed."""
    lines = [line for line in workers.output(proc).splitlines() if line.startswith('{"ids"')]
    assert lines, workers.output(proc)[-3000:]
    return json.loads(lines[-1])


def _progressing(predicate: Callable[[], bool], progress: Callable[[], int],
                 stall: float = 30.0) -> float | None:
    """Seconds until ``predicate`` held, or None once ``progress()`` has not moved for
    ``stall`` seconds."""
    start = moved = time.monotonic()
    last = progress()
    while not predicate():
        now = progress()
        if now != last:
            last, moved = now, time.monotonic()
        elif time.monotonic() - moved > stall:
            return None
        time.sleep(0.1)
    return time.monotonic() - start


def _session_state_errors(text: str) -> int:
    return sum(text.count(marker) for marker in SESSION_STATE_ERRORS)


@pytest.mark.timeout(scale(300, 900))
@pytest.mark.parametrize("pool_mode", ["transaction", "session"])
def test_16_workers_and_enqueuers_behind_pgbouncer(pgbouncer, workers, ledger, record,
                                                    pool_mode):
    n_jobs, n_workers = scale((840, 3), (6000, 4))
    # Transaction pooling multiplexes every client onto few server connections; session
    # pooling gives each client one for as long as it stays connected, so it needs one per
    # connection of the workers (concurrency + 6 each) and the enqueuers.
    bouncer = pgbouncer(pool_mode, 8 if pool_mode == "transaction" else n_workers * 10 + 8)
    # Transaction pooling: the defaults, POOLER "auto", must find the pooler on their own.
    settings = fast_settings(**({"POOLER": "session"} if pool_mode == "session" else {}))
    procs = [workers.start("--concurrency", "4", edgejobs=settings, url=bouncer.url())
             for _ in range(n_workers)]
    singles = n_jobs * 5 // 8
    enqueuers = [
        workers.start(str(singles), "--seconds", "0.02", command="qa_enqueue",
                      edgejobs=settings, url=bouncer.url()),
        workers.start(str(n_jobs - singles), "--seconds", "0.02", "--batch", "20",
                      command="qa_enqueue", edgejobs=settings, url=bouncer.url()),
    ]
    started = time.monotonic()
    done_rows = Run.objects.filter(phase="done")
    # Today's failure mode is a stall (every claim refused), so wait while jobs get done.
    underway = _progressing(lambda: done_rows.count() >= n_jobs // 3, done_rows.count)
    victim, victim_id, killed_clock = procs[0], None, timezone.now()
    if underway is not None:
        victim_id = WorkerRow.objects.get(pid=victim.pid).id
        victim.send_signal(signal.SIGKILL)
        killed_clock = timezone.now()
        victim.wait(10)
    for proc in enqueuers:
        assert proc.wait(300) == 0, workers.output(proc)[-3000:]
    results = [_enqueued(workers, proc) for proc in enqueuers]
    ids = [uuid.UUID(i) for r in results for i in r["ids"]]
    enqueue_errors = [e for r in results for e in r["errors"]]
    settled = Job.objects.filter(id__in=ids, status__in=("completed", "failed", "cancelled"))
    finished = _progressing(lambda: _finished(ids), settled.count)
    seconds = time.monotonic() - started

    verdict = ledger.verdict(ids)
    failed = Job.objects.filter(id__in=ids, status="failed")
    done = ledger.done_counts()
    reclaimed = JobEvent.objects.filter(job_id__in=ids, type="reclaimed")
    held = set(reclaimed.values_list("job_id", flat=True))
    twice = {j for j, n in done.items() if n > 1} & set(ids)
    logs = "".join(workers.output(p) for p in procs)
    recovery = max(((e.created_at - killed_clock).total_seconds() for e in reclaimed),
                   default=None)
    record(f"16{'' if pool_mode == 'transaction' else 'b'}. pgbouncer {pool_mode} pooling: "
           f"{n_workers} workers, 2 enqueuers, one worker kill -9", **verdict,
           recovery_seconds=round(recovery, 2) if recovery is not None else "\u2013",
           successful_recorded_failed=failed.filter(id__in=list(done)).count(),
           failed=failed.count(), enqueue_errors=len(enqueue_errors),
           session_state_errors_logged=_session_state_errors(logs),
           claim_errors_logged=logs.count("claim failed"),
           held_by_killed=len(held), seconds=round(seconds, 1))

    assert underway is not None and finished is not None, f"the jobs stalled: {verdict}"
    assert not enqueue_errors, enqueue_errors[:5]
    assert len(ids) == n_jobs
    assert _session_state_errors(logs) == 0, [
        line for line in logs.splitlines() if any(m in line for m in SESSION_STATE_ERRORS)][:5]
    assert not failed.exists(), list(failed.values_list("last_error", flat=True)[:5])
    assert verdict["lost"] == 0 and verdict["stuck"] == 0, verdict
    assert twice <= held, "a job ran twice that no dead worker held"
    assert {e.data["worker"] for e in reclaimed} <= {victim_id}
    assert all(p.poll() is None for p in procs[1:]), "a surviving worker exited"


def _pickups(n: int, poll: float, spread: float) -> list[float]:
    """Enqueue ``n`` jobs one at a time, each 0.05 to ``spread`` seconds after the previous
    one was claimed; the seconds from each job's creation to its claim (both on this
    machine's clocks: the database's, Python's). A ``spread`` of the poll interval puts the
    jobs at any moment of the poll cycle."""
    out = []
    rng = random.Random(15)
    for _ in range(n):
        time.sleep(rng.uniform(0.05, spread))
        job = enqueue("qa.work", {"seconds": 0})
        started = wait_for(lambda j=job: Job.objects.filter(id=j.id, started_at__isnull=False)
                           .values_list("started_at", flat=True).first(),
                           timeout=poll + 10, message="the job claimed")
        out.append((started - job.created_at).total_seconds())
    return out


WAKEUPS = {
    # (row, pool mode, EDGEJOBS, with a LISTEN_DATABASE that bypasses the pooler)
    "transaction-no-listen-database": ("16c", "transaction", {}, False),
    "transaction-listen-database": ("16d", "transaction", {"POOLER": "transaction"}, True),
    "session": ("16e", "session", {"POOLER": "session"}, False),
}


@pytest.mark.parametrize("case", list(WAKEUPS))
def test_16_wakeups_behind_pgbouncer(pgbouncer, workers, record, case):
    row, pool_mode, extra, listen_database = WAKEUPS[case]
    poll = 3.0
    bouncer = pgbouncer(pool_mode, 4 if pool_mode == "transaction" else 16)
    env = {"LISTEN_DATABASE_URL": bouncer.direct_url()} if listen_database else {}
    proc = workers.start("--concurrency", "2", url=bouncer.url(), env=env,
                         edgejobs=fast_settings(POLL_INTERVAL=poll, **extra))
    wait_for(lambda: WorkerRow.objects.filter(pid=proc.pid).exists(), timeout=60,
             message="the worker registered")
    until(lambda: "wake-ups:" in workers.output(proc) or proc.poll() is not None, 10)
    polling = pool_mode == "transaction" and not listen_database
    pickups = _pickups(scale(6, 30), poll, spread=poll if polling else 0.3)
    median = statistics.median(pickups)
    log = workers.output(proc)
    warnings = [line for line in log.splitlines() if "WARNING" in line and "wake-ups:" in line]
    record(f"{row}. pickup behind pgbouncer {pool_mode} pooling, "
           + ("LISTEN_DATABASE set" if listen_database else "no LISTEN_DATABASE")
           + f", POLL_INTERVAL {poll:g} s", jobs=len(pickups),
           pickup_median_seconds=round(median, 3), pickup_max_seconds=round(max(pickups), 3),
           wakeup_warnings_logged=len(warnings))
    assert proc.poll() is None, log[-3000:]
    if polling:
        # LISTEN cannot work through the pooler: one warning at start, and polling still runs
        # every job within a poll interval.
        assert len(warnings) == 1, log[-3000:]
        assert max(pickups) <= poll + 1.0, pickups
    else:
        assert not warnings, warnings
        alias = "listen" if listen_database else "default"
        assert f"wake-ups: LISTEN on database '{alias}'" in log, log[-3000:]
        assert median < 0.5, pickups
