"""Nothing lost, nothing twice: real workers under kills, stops, lost connections and bad input.

Row numbers follow issue 9. Sizes are scaled down unless ``EDGEJOBS_FAULTS=full``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.db.models import Count
from django.utils import timezone
from qa.models import Run

from django_edgejobs import (
    InvalidPayload,
    complete_token,
    enqueue,
    enqueue_many,
    get_job,
    get_job_events,
)
from django_edgejobs.models import Job, JobEvent, WaitToken
from django_edgejobs.models import Worker as WorkerRow
from django_edgejobs.store import get_store
from tests.acceptance.faults.conftest import fast_settings, postgres_only, scale, until
from tests.conftest import wait_for

pytestmark = [pytest.mark.acceptance, pytest.mark.fault]

FAST = fast_settings()


def many(n: int, seconds: float = 0, **options) -> list:
    jobs = enqueue_many([{"type": "qa.work", "payload": {"seconds": seconds}, **options}
                         for _ in range(n)])
    return [j.id for j in jobs]


def all_finished(job_ids) -> bool:
    return not Job.objects.filter(id__in=job_ids).exclude(
        status__in=("completed", "failed", "cancelled")).exists()


@postgres_only
def test_01_many_workers_many_jobs_no_faults(workers, ledger, record):
    n_workers, n_jobs = scale((4, 2000), (10, 10_000))
    ids = many(n_jobs)
    started = time.monotonic()
    procs = [workers.start("--burst", "--concurrency", "4", "--batch-size", "50",
                           edgejobs=FAST) for _ in range(n_workers)]
    for proc in procs:
        assert proc.wait(600) == 0, workers.output(proc)
    verdict = ledger.verdict(ids)
    record("1. many workers, no faults", workers=n_workers, **verdict,
           seconds=round(time.monotonic() - started, 1))
    assert verdict == {"jobs": n_jobs, "lost": 0, "duplicated": 0, "stuck": 0}


@postgres_only
def test_02_kill_9_two_of_four_workers_mid_run(workers, ledger, record):
    n_jobs = scale(48, 500)
    low, high = scale((1, 2), (2, 5))
    ids = [j.id for j in enqueue_many([
        {"type": "qa.work", "payload": {"seconds": low + (high - low) * (n % 7) / 6}}
        for n in range(n_jobs)])]
    procs = [workers.start("--concurrency", "4", "--batch-size", "4", edgejobs=FAST)
             for _ in range(4)]
    wait_for(lambda: Run.objects.filter(phase="done").count() >= n_jobs // 6, timeout=120,
             message="the run is under way")
    victims = procs[:2]
    for proc in victims:
        proc.send_signal(signal.SIGKILL)
    killed_at = timezone.now()
    for proc in victims:
        proc.wait(10)
    victim_pids = {p.pid for p in victims}
    victim_ids = set(WorkerRow.objects.filter(pid__in=victim_pids).values_list("id", flat=True))
    wait_for(lambda: all_finished(ids), timeout=600, message="all jobs finished")
    verdict = ledger.verdict(ids)
    # What a killed worker held: jobs it had claimed, whether its handler had started them,
    # finished them without the acknowledgement reaching the database, or not begun yet.
    reclaimed = JobEvent.objects.filter(job_id__in=ids, type="reclaimed")
    held = set(reclaimed.values_list("job_id", flat=True))
    assert {e.data["worker"] for e in reclaimed} <= victim_ids
    # Every job a killed worker was running (started, never done there) was reclaimed ...
    in_flight = set(Run.objects.filter(pid__in=victim_pids, phase="start")
                    .values_list("job_id", flat=True)) - set(
        Run.objects.filter(pid__in=victim_pids, phase="done").values_list("job_id", flat=True))
    assert in_flight, "the killed workers were running jobs"
    assert in_flight <= held
    # ... and a job ran twice only if a killed worker held it.
    twice = {j for j, n in ledger.done_counts().items() if n > 1}
    assert twice <= held
    recovery = max((e.created_at - killed_at).total_seconds() for e in reclaimed)
    budget = FAST["WORKER_TIMEOUT"] + FAST["POLL_INTERVAL"] + FAST["SUPERVISOR_INTERVAL"] + 2
    for job in Job.objects.filter(id__in=held):
        assert job.attempts == 2, (job.id, job.attempts)  # exactly one extra attempt
    record("2. kill -9 two of four workers", **verdict, in_flight_on_killed=len(in_flight),
           held_by_killed=len(held),
           recovery_seconds=round(recovery, 2))
    assert verdict["lost"] == 0 and verdict["stuck"] == 0
    assert recovery <= budget, recovery


@postgres_only
def test_03_several_supervisors_reclaim_each_stuck_job_once(workers, ledger, record):
    n_jobs = scale(60, 500)
    ids = many(n_jobs)
    claimed = get_store().claim("ghost:1", ["default"], n_jobs)  # a worker that never was
    assert len(claimed) == n_jobs
    procs = [workers.start("--concurrency", "4", edgejobs=FAST) for _ in range(4)]
    seconds = until(lambda: all_finished(ids), timeout=120)
    assert seconds is not None
    per_job = dict(JobEvent.objects.filter(job_id__in=ids, type="reclaimed")
                   .values_list("job_id").annotate(n=Count("id")).values_list("job_id", "n"))
    verdict = ledger.verdict(ids)
    record("3. four supervisors, stuck jobs", **verdict, reclaimed_twice=sum(
        1 for n in per_job.values() if n > 1), recovery_seconds=round(seconds, 2))
    assert set(per_job) == set(ids) and set(per_job.values()) == {1}
    assert verdict == {"jobs": n_jobs, "lost": 0, "duplicated": 0, "stuck": 0}
    assert all(p.poll() is None for p in procs)


def _terminate_worker_backends() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                       "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                       "AND backend_type = 'client backend'")
        return cursor.fetchone()[0]


@postgres_only
def test_04_connections_terminated_every_few_seconds(workers, ledger, record):
    period, duration = scale((3, 15), (10, 120))
    procs = [workers.start("--concurrency", "4", edgejobs=FAST) for _ in range(2)]
    wait_for(lambda: WorkerRow.objects.filter(stopped_at__isnull=True).count() == 2,
             timeout=30, message="workers registered")
    ids: list = []
    resumed: list[float] = []
    end = time.monotonic() + duration
    next_kill = time.monotonic() + period
    while time.monotonic() < end:
        ids += many(10, seconds=0.05)
        if time.monotonic() >= next_kill:
            assert _terminate_worker_backends() > 0
            killed_at = time.monotonic()
            before = Run.objects.filter(phase="done").count()
            ids += many(5)
            took = until(lambda b=before: Run.objects.filter(phase="done").count() > b, 30)
            assert took is not None, "claiming did not resume"
            resumed.append(time.monotonic() - killed_at)
            next_kill = time.monotonic() + period
        time.sleep(0.5)
    wait_for(lambda: all_finished(ids), timeout=120, message="all jobs finished")
    verdict = ledger.verdict(ids)
    record("4. pg_terminate_backend every few seconds", **verdict, kills=len(resumed),
           recovery_seconds=round(max(resumed), 2))
    assert verdict["lost"] == 0 and verdict["stuck"] == 0
    assert max(resumed) <= 5
    fresh = timezone.now() - timedelta(seconds=FAST["WORKER_TIMEOUT"])
    alive = WorkerRow.objects.filter(stopped_at__isnull=True, last_heartbeat__gte=fresh)
    assert alive.count() == 2 and all(p.poll() is None for p in procs)


@postgres_only
@pytest.mark.skipif(not scale(False, True), reason="restarts PostgreSQL: make chaos only")
@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_05_postgresql_restarted_mid_run(workers, ledger, record, mode):
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    cluster = os.environ.get("EDGEJOBS_PG_CLUSTER", "main")  # the cluster DATABASE_URL names
    procs = [workers.start("--concurrency", "4", edgejobs=FAST) for _ in range(2)]
    # About 12 s of work on the 8 slots, so most of it is still to do when the server is back.
    ids = many(480, seconds=0.2)
    wait_for(lambda: Run.objects.filter(phase="done").count() > 20, timeout=60,
             message="under way")
    connections.close_all()
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, cluster, "restart",
                    "-m", mode], check=True)
    back = time.monotonic()
    connections.close_all()
    before = Run.objects.filter(phase="done").count()
    took = until(lambda: Run.objects.filter(phase="done").count() > before, 60)
    wait_for(lambda: all_finished(ids), timeout=120, message="all jobs finished")
    verdict = ledger.verdict(ids)
    errors = sum(workers.output(p).count("ERROR") + workers.output(p).count("WARNING")
                 for p in procs)
    record(f"5. PostgreSQL restart ({mode})", **verdict,
           recovery_seconds=round(took or -1, 2), log_warnings=errors)
    assert took is not None and took <= 10
    assert verdict["lost"] == 0 and verdict["stuck"] == 0
    assert errors < 200  # backoff, not a tight error loop
    del back


@postgres_only
def test_06_a_frozen_worker_loses_its_jobs_and_its_late_writes_are_refused(workers, record):
    ids = many(4, seconds=scale(12, 20))
    frozen = workers.start("--concurrency", "4", edgejobs=FAST)
    wait_for(lambda: Run.objects.filter(phase="start", pid=frozen.pid).count() == 4,
             timeout=30, message="the frozen worker runs all four")
    frozen.send_signal(signal.SIGSTOP)
    rescuer = workers.start("--concurrency", "4", edgejobs=FAST)
    took = until(lambda: Run.objects.filter(phase="start", pid=rescuer.pid).count() == 4, 60)
    assert took is not None, "not reclaimed"
    frozen.send_signal(signal.SIGCONT)
    wait_for(lambda: all_finished(ids), timeout=120, message="all finished")
    wait_for(lambda: Run.objects.filter(pid=frozen.pid, phase="cancelled").count() == 4,
             timeout=30, message="the resumed worker noticed and stopped its jobs")
    completed_events = JobEvent.objects.filter(job_id__in=ids, type="completed").count()
    stale = Job.objects.filter(id__in=ids).exclude(result__pid=rescuer.pid).count()
    record("6. SIGSTOP past WORKER_TIMEOUT, then SIGCONT", jobs=4, lost=0,
           duplicated=completed_events - 4, stale_writes_accepted=stale,
           recovery_seconds=round(took, 2))
    assert completed_events == 4 and stale == 0


@postgres_only
def test_07_a_long_heartbeating_job_stays_and_an_overdue_one_fails(workers, record):
    long_job = enqueue("qa.work", {"seconds": scale(10, 60)})
    late_job = enqueue("qa.work", {"seconds": 60}, timeout=1, max_attempts=1)
    workers.start("--concurrency", "2", edgejobs=FAST)
    wait_for(lambda: get_job(late_job.id).status == "failed", timeout=30,
             message="the overdue job failed")
    wait_for(lambda: get_job(long_job.id).status == "completed", timeout=120,
             message="the long job completed")
    long_kinds = [e.type for e in get_job_events(long_job.id)]
    record("7. long job kept, overdue job failed", jobs=2, lost=0, duplicated=0, stuck=0,
           reclaimed=long_kinds.count("reclaimed"))
    assert "reclaimed" not in long_kinds and get_job(long_job.id).attempts == 1
    assert get_job(late_job.id).last_error.startswith("TimeoutError")


@postgres_only
def test_09_sigterm_with_20_jobs_in_flight(workers, record):
    ids = many(20, seconds=1)
    queued_after = many(10)
    proc = workers.start("--concurrency", "20", "--batch-size", "20",
                         "--shutdown-timeout", "20", edgejobs=FAST)
    wait_for(lambda: Run.objects.filter(phase="start").count() == 20, timeout=60,
             message="20 in flight")
    signalled = timezone.now()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0, workers.output(proc)
    assert all(get_job(j).status == "completed" for j in ids)
    assert not Run.objects.filter(at__gt=signalled, phase="start").exists()  # no new claims
    assert all(get_job(j).status == "pending" for j in queued_after)

    short = many(3, seconds=60)
    proc = workers.start("--concurrency", "3", "--shutdown-timeout", "0.5", edgejobs=FAST)
    wait_for(lambda: Run.objects.filter(job_id__in=short, phase="start").count() == 3,
             timeout=60, message="3 long jobs in flight")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    back = Job.objects.filter(id__in=short, status="pending", attempts=0).count()

    proc = workers.start("--concurrency", "3", "--shutdown-timeout", "60", edgejobs=FAST)
    wait_for(lambda: Run.objects.filter(job_id__in=short, phase="start").count() == 6,
             timeout=60, message="3 long jobs in flight again")
    proc.send_signal(signal.SIGTERM)
    wait_for(lambda: "stopping" in workers.output(proc), timeout=10, message="draining")
    second = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.wait(10)
    exit_seconds = time.monotonic() - second
    record("9. SIGTERM with 20 in flight", jobs=20, lost=0, duplicated=0, stuck=0,
           released_without_attempt=back, second_signal_exit_seconds=round(exit_seconds, 2))
    assert back == 3 and exit_seconds < 1.5


@postgres_only
def test_10_poison_jobs_fail_within_their_attempts_and_healthy_jobs_pass(workers, ledger,
                                                                        record):
    from django_edgejobs.models import JobStatus

    raising = enqueue("qa.poison", {})
    killer = enqueue("qa.poison", {"kill": True})
    gone = Job.objects.create(type="qa.no_such_handler", max_attempts=2, retry_delay=0)
    healthy = many(scale(200, 1000))
    alive = []

    def keep_two_workers():
        alive[:] = [p for p in alive if p.poll() is None]
        while len(alive) < 2:
            alive.append(workers.start("--concurrency", "2", "--batch-size", "10",
                                       edgejobs=FAST))

    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not all_finished(
            [raising.id, killer.id, gone.id, *healthy]):
        keep_two_workers()
        time.sleep(0.5)
    poison = {j: get_job(j) for j in (raising.id, killer.id, gone.id)}
    verdict = ledger.verdict(healthy)
    record("10. poison jobs", **verdict, poison_failed=sum(
        1 for j in poison.values() if j.status == JobStatus.FAILED),
        worker_restarts=len(workers.procs) - 2)
    assert [j.status for j in poison.values()] == ["failed"] * 3
    # Every attempt's error is recorded: its own, or the death of the worker it ran on (the
    # killer takes down whatever else its worker was running: collateral, reclaimed).
    for job in poison.values():
        assert 1 <= job.attempts <= job.max_attempts
        assert len(job.error_history) == job.attempts, job.error_history
    reclaim = "stopped heart-beating"
    no_handler = "no handler is registered for job type 'qa.no_such_handler'"
    assert all(e["error"] == "RuntimeError: poison" or reclaim in e["error"]
               for e in poison[raising.id].error_history)
    assert all(no_handler in e["error"] or reclaim in e["error"]
               for e in poison[gone.id].error_history)
    assert reclaim in poison[killer.id].last_error
    killed = {p.pid for p in workers.procs if p.poll() is not None}
    on_killed = set(Run.objects.filter(pid__in=killed).values_list("job_id", flat=True))
    assert {j for j, n in ledger.done_counts().items() if n > 1} <= on_killed
    assert verdict["lost"] == 0 and verdict["stuck"] == 0


def test_11_payload_sizes(settings, record, db):
    refused, stored = 0, 0
    sizes = scale([1_000, 100_000, 999_000, 1_001_000, 10_000_000],
                  [1_000, 100_000, 999_000, 1_001_000, 10_000_000, 100_000_000])
    for size in sizes:
        payload = {"blob": "x" * size}
        if size + 20 > settings.EDGEJOBS.get("MAX_PAYLOAD_BYTES", 1_000_000):
            with pytest.raises(InvalidPayload, match="over MAX_PAYLOAD_BYTES"):
                enqueue("qa.work", payload)
            refused += 1
        else:
            assert get_job(enqueue("qa.work", payload).id).payload == payload
            stored += 1
    assert Job.objects.count() == stored
    record("11. payloads 1 KB to " + ("100 MB" if sizes[-1] >= 10**8 else "10 MB"),
           stored=stored, refused_at_enqueue=refused, database_errors=0)


@pytest.mark.skipif("connection.vendor != 'sqlite'", reason="the SQLite scenario")
def test_12_sqlite_four_workers_one_kill_9(workers, ledger, record):
    ids = many(scale(600, 2000), seconds=0.002)
    procs = [workers.start("--concurrency", "2", "--batch-size", "20", edgejobs=FAST)
             for _ in range(4)]
    wait_for(lambda: Run.objects.filter(phase="done").count() > len(ids) // 4, timeout=120,
             message="under way")
    procs[0].send_signal(signal.SIGKILL)
    procs[0].wait(10)
    wait_for(lambda: all_finished(ids), timeout=300, message="all jobs finished")
    verdict = ledger.verdict(ids)
    crashed = [p for p in procs[1:] if p.poll() is not None]
    locked = sum(workers.output(p).count("database is locked") for p in procs[1:])
    record("12. SQLite, four workers, one kill -9", **verdict, crashed_workers=len(crashed),
           lock_errors_logged=locked)
    assert verdict["lost"] == 0 and verdict["stuck"] == 0 and not crashed
    twice = {j for j, n in ledger.done_counts().items() if n > 1}
    assert twice <= set(Run.objects.filter(pid=procs[0].pid).values_list("job_id", flat=True))


@postgres_only
def test_13_steps_survive_a_kill_and_a_double_completion_resumes_once(workers, record):
    job = enqueue("qa.five_steps", {})
    victim = workers.start("--concurrency", "1", edgejobs=FAST)
    wait_for(lambda: Run.objects.filter(job_id=job.id, phase="paused").exists(), timeout=60,
             message="paused after step 3")
    victim.send_signal(signal.SIGKILL)
    victim.wait(10)
    workers.start("--concurrency", "1", edgejobs=FAST)
    wait_for(lambda: get_job(job.id).status == "completed", timeout=60, message="completed")
    steps = list(Run.objects.filter(job_id=job.id).exclude(phase="paused")
                 .values_list("phase", flat=True).order_by("id"))
    assert steps == ["step1", "step2", "step3", "step4", "step5"]  # 1-3 ran once

    approval = enqueue("shop.refund_approval", {"order_id": 1, "approver": "a@example.com"})
    wait_for(lambda: get_job(approval.id).status == "waiting", timeout=60, message="waiting")
    token = WaitToken.objects.get(job_id=approval.id)
    results: list[bool] = []
    barrier = threading.Barrier(2)

    def complete() -> None:
        try:
            barrier.wait(5)
            results.append(complete_token(token.id, {"approved": True}))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=complete) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    wait_for(lambda: get_job(approval.id).status == "completed", timeout=60,
             message="approved and completed")
    resumed = [e.type for e in get_job_events(approval.id)].count("resumed")
    record("13. durable steps across kill -9; token completed twice", jobs=2, lost=0,
           duplicated=0, stuck=0, steps_rerun=0, resumed=resumed)
    assert sorted(results) == [False, True] and resumed == 1


FAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"


def _ticks(name: str) -> tuple[int, int, int]:
    """(jobs, distinct ticks, missed ticks between the first and the last) of a schedule."""
    runs = list(Job.objects.filter(type="qa.work", tags__contains=[f"cron:{name}"])
                .values_list("run_at", flat=True)) if connection.vendor == "postgresql" else [
        j.run_at for j in Job.objects.filter(type="qa.work") if f"cron:{name}" in j.tags]
    distinct = sorted(set(runs))
    if not distinct:
        return 0, 0, 0
    span = int((distinct[-1] - distinct[0]).total_seconds()) + 1
    return len(runs), len(distinct), span - len(distinct)


def _schedule_for(seconds: float, procs, kill_at: float | None = None) -> None:
    started = time.monotonic()
    killed = False
    while time.monotonic() - started < seconds:
        if kill_at is not None and not killed and time.monotonic() - started >= kill_at:
            for proc in procs[:2]:
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)
            killed = True
        time.sleep(0.2)


@postgres_only
@pytest.mark.timeout(scale(300, 900))  # full scale: two runs of 180 s each, and set-up
def test_08_three_schedulers_every_second_with_kills_and_skewed_clocks(workers, record):
    from django_edgejobs import add_cron, remove_cron

    duration, kill_at = scale((20, 7), (180, 60))
    add_cron("faults-tick", "* * * * * *", "qa.work", {"seconds": 0}, allow_overlap=True)
    procs = [workers.start("--scheduler-only", edgejobs=FAST) for _ in range(3)]
    _schedule_for(duration, procs, kill_at=kill_at)
    for proc in procs[2:]:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    jobs, distinct, missed = _ticks("faults-tick")
    record("8. three schedulers, two killed", ticks=distinct, duplicated=jobs - distinct,
           missed=missed)
    assert jobs == distinct  # one job per tick
    assert missed <= 2 + 1, missed  # at most 2, plus the failover
    assert distinct >= duration - 4

    if not os.path.exists(FAKETIME):
        pytest.skip("libfaketime is not installed (apt-get install faketime): skew not run")
    remove_cron("faults-tick")
    Job.objects.all().delete()
    add_cron("faults-skew", "* * * * * *", "qa.work", {"seconds": 0}, allow_overlap=True)
    procs = [workers.start("--scheduler-only", edgejobs=FAST,
                           env={"LD_PRELOAD": FAKETIME, "FAKETIME": skew,
                                "FAKETIME_DONT_FAKE_MONOTONIC": "1"})
             for skew in ("-5s", "+0s", "+5s")]
    _schedule_for(duration, procs)
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    jobs, distinct, missed = _ticks("faults-skew")
    record("8b. three schedulers, clocks skewed -5 s / 0 / +5 s", ticks=distinct,
           duplicated=jobs - distinct, missed=missed)
    assert jobs == distinct and missed <= 2
