"""Rows 17 and 18 (issue 15, items 3 and 4): the database goes away for longer than
WORKER_TIMEOUT, and the worker's connections go half-open.

The workers (real ``runworker`` processes) reach PostgreSQL through a TCP proxy the test
controls (``proxy.py``); their ledger rows (the oracle) and the test's own queries go to the
database directly (``LEDGER_DATABASE_URL``), so what the handlers did is recorded whatever
happens to the workers' connections.
"""

from __future__ import annotations

import signal
import time

import pytest
from django.db import connection
from django.utils import timezone
from qa.models import Run

from django_edgejobs import enqueue_many
from django_edgejobs.models import Job, JobEvent
from django_edgejobs.models import Worker as WorkerRow
from tests.acceptance.conftest import database_url
from tests.acceptance.faults.conftest import fast_settings, postgres_only, scale, until
from tests.acceptance.faults.proxy import Proxy
from tests.conftest import wait_for

pytestmark = [pytest.mark.acceptance, pytest.mark.fault, postgres_only]


@pytest.fixture
def proxy(transactional_db):
    settings = connection.settings_dict
    running = Proxy((settings["HOST"] or "127.0.0.1", int(settings["PORT"] or 5432))).start()
    yield running
    running.stop()


def start_workers(workers, proxy, n: int, *args: str, **edgejobs) -> list:
    return [workers.start("--concurrency", "4", *args, edgejobs=fast_settings(**edgejobs),
                          url=proxy.url(database_url()),
                          env={"LEDGER_DATABASE_URL": database_url()})
            for _ in range(n)]


def jobs(n: int, seconds=lambda n: 0.0) -> list:
    return [j.id for j in enqueue_many([{"type": "qa.work", "payload": {"seconds": seconds(k)}}
                                        for k in range(n)])]


def finished(job_ids) -> bool:
    return not Job.objects.filter(id__in=job_ids).exclude(
        status__in=("completed", "failed", "cancelled")).exists()


def successful_recorded_failed(job_ids) -> int:
    done = set(Run.objects.filter(job_id__in=job_ids, phase="done")
               .values_list("job_id", flat=True))
    return Job.objects.filter(id__in=done, status="failed").count()


def registered(procs) -> bool:
    return WorkerRow.objects.filter(pid__in=[p.pid for p in procs],
                                    stopped_at__isnull=True).count() == len(procs)


@pytest.mark.timeout(scale(120, 300))
def test_17_an_outage_longer_than_worker_timeout_reclaims_only_a_dead_workers_jobs(
        proxy, workers, ledger, record):
    outage = scale(8.0, 12.0)
    timeout = fast_settings()["WORKER_TIMEOUT"]
    n_jobs = scale(90, 300)
    ids = jobs(n_jobs, seconds=lambda k: 0.3 + 0.15 * (k % 7))
    procs = start_workers(workers, proxy, 3)
    wait_for(lambda: Run.objects.filter(phase="done").count() >= n_jobs // 6, timeout=60,
             message="the run is under way")
    proxy.cut()
    victim = procs[2]  # dies during the outage: its jobs must still be reclaimed, later
    victim.send_signal(signal.SIGKILL)
    victim.wait(10)
    time.sleep(outage)  # the fault itself: the database is unreachable this long
    finished_during_outage = Run.objects.filter(phase="done", job_id__in=ids).count() - (
        Job.objects.filter(id__in=ids, status="completed").count())
    restored = timezone.now()
    proxy.pass_()
    recovery = until(lambda: Job.objects.filter(id__in=ids, completed_at__gt=restored).exists(),
                     timeout=60)
    wait_for(lambda: finished(ids), timeout=120, message="all jobs finished")
    all_done = (timezone.now() - restored).total_seconds()
    verdict = ledger.verdict(ids)
    dead = WorkerRow.objects.get(pid=victim.pid).id
    reclaimed = list(JobEvent.objects.filter(job_id__in=ids, type="reclaimed"))
    of_live = [e for e in reclaimed if e.data["worker"] != dead]
    held = {e.job_id for e in reclaimed if e.data["worker"] == dead}
    running_on_dead = set(Run.objects.filter(pid=victim.pid, phase="start")
                          .values_list("job_id", flat=True)) - set(
        Run.objects.filter(pid=victim.pid, phase="done").values_list("job_id", flat=True))
    twice = {j for j, n in ledger.done_counts().items() if n > 1}
    held_back = min(((e.created_at - restored).total_seconds() for e in reclaimed),
                    default=None)
    record(f"17. database cut for {outage:g} s (WORKER_TIMEOUT {timeout} s) under 3 busy "
           "workers, one killed meanwhile", **verdict,
           recovery_seconds=round(recovery, 2) if recovery is not None else "\u2013",
           reclaimed_of_live_workers=len(of_live), reclaimed_of_dead_worker=len(held),
           dead_worker_reclaimed_after_seconds=round(held_back, 2)
           if held_back is not None else "\u2013",
           finished_during_outage=finished_during_outage,
           successful_recorded_failed=successful_recorded_failed(ids),
           all_done_seconds=round(all_done, 1))
    assert not of_live, f"{len(of_live)} jobs of live workers were reclaimed"
    assert running_on_dead, "the killed worker was running jobs"
    assert running_on_dead <= held, "a job the dead worker was running was not reclaimed"
    assert twice <= held, "a job ran twice that no dead worker held"
    assert held_back is not None and held_back >= timeout - 1, held_back  # held back, then
    assert held_back <= timeout + 10, held_back  # ... reclaimed
    assert verdict["lost"] == 0 and verdict["stuck"] == 0, verdict
    assert successful_recorded_failed(ids) == 0
    assert recovery is not None and recovery <= 15, recovery
    assert all(p.poll() is None for p in procs[:2]), "a live worker exited"


#: Row 18's liveness settings: a statement unanswered for 1.5 s is taken for a dead connection
#: (the server cancels its own after 1 s); leases survive that (WORKER_TIMEOUT 5 s).
HALF_OPEN = {"STATEMENT_TIMEOUT": 1, "WATCHDOG_TIMEOUT": 1.5, "WORKER_TIMEOUT": 5}


@pytest.mark.timeout(scale(120, 300))
def test_18_half_open_connections_idle_and_busy(proxy, workers, ledger, record):
    n_quick = scale(10, 50)
    procs = start_workers(workers, proxy, 2, **HALF_OPEN)
    warm = jobs(16)  # every thread of the workers opens its connection
    wait_for(lambda: finished(warm), timeout=60, message="warmed up")
    wait_for(lambda: all("wake-ups: LISTEN" in workers.output(p) for p in procs), timeout=30,
             message="listening")

    def half_open_then(new_jobs) -> tuple[int, float, list]:
        accepted = proxy.accepted
        blackholed = proxy.blackhole()
        started = time.monotonic()
        ids = new_jobs()
        wait_for(lambda: finished(ids), timeout=60, message="the new jobs finished")
        took = time.monotonic() - started
        assert proxy.accepted > accepted, "no new connection was opened"
        proxy.pass_()
        return blackholed, took, ids

    # Idle: nothing running when the connections go half-open; new jobs arrive.
    idle_blackholed, idle_seconds, idle_ids = half_open_then(lambda: jobs(n_quick))
    # Busy: 8 two-second jobs running on the 8 slots, then half-open, then new jobs.
    busy = jobs(8, seconds=lambda k: 2.0)
    wait_for(lambda: Run.objects.filter(job_id__in=busy, phase="start").count() == 8,
             timeout=60, message="8 jobs running")
    busy_blackholed, busy_seconds, quick = half_open_then(lambda: jobs(n_quick))
    wait_for(lambda: finished(busy), timeout=60, message="the running jobs finished")
    ids = [*warm, *idle_ids, *busy, *quick]
    verdict = ledger.verdict(ids)
    logs = "".join(workers.output(p) for p in procs)
    interrupted = logs.count("watchdog: ") - logs.count("still stuck")
    reclaimed = JobEvent.objects.filter(job_id__in=ids, type="reclaimed").count()
    record("18. half-open connections (blackholed, new ones pass), idle then busy: 2 workers, "
           "WATCHDOG_TIMEOUT 1.5 s", **verdict,
           recovery_seconds=round(max(idle_seconds, busy_seconds), 2),
           idle_recovery_seconds=round(idle_seconds, 2),
           busy_recovery_seconds=round(busy_seconds, 2),
           connections_blackholed=idle_blackholed + busy_blackholed,
           calls_interrupted=interrupted, reclaimed=reclaimed,
           successful_recorded_failed=successful_recorded_failed(ids))
    assert verdict == {"jobs": len(ids), "lost": 0, "duplicated": 0, "stuck": 0}, verdict
    assert reclaimed == 0 and successful_recorded_failed(ids) == 0
    assert interrupted >= 1 and "still stuck" not in logs
    # The bound: the watchdog's timeout and check, a retry's backoff, a poll, and slack.
    assert max(idle_seconds, busy_seconds) <= 10, (idle_seconds, busy_seconds)
    assert all(p.poll() is None for p in procs), "a worker exited"
