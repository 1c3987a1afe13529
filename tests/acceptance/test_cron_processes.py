"""Acceptance: real ``runworker`` processes share one every-second schedule.

Three schedulers race for every tick (two workers and a ``--scheduler-only`` process) for 30 s,
then one is killed with SIGKILL and the other two go on for 30 s more. Each phase: no tick
becomes two jobs, and at most two ticks are missed."""

from __future__ import annotations

import signal
import time
from datetime import datetime, timedelta

import pytest
from django.db.models import Count
from django.utils import timezone

from django_edgejobs.models import CronTick, Job
from tests.conftest import wait_for

pytestmark = pytest.mark.acceptance

PHASE = 30  # seconds per phase
SETTINGS = {
    "POLL_INTERVAL": 0.1, "HEARTBEAT_INTERVAL": 0.5, "WORKER_TIMEOUT": 3,
    # allow_overlap: every tick becomes a job, so jobs count ticks one for one.
    "CRON": {"every-second": {"cron": "* * * * * *", "type": "qa.record",
                              "allow_overlap": True}},
}


def whole_second(moment: datetime, up: bool) -> datetime:
    floor = moment.replace(microsecond=0)
    return floor + timedelta(seconds=1) if up and floor != moment else floor


def check_phase(start: datetime, end: datetime, name: str) -> set[str]:
    """Assert the phase's ticks: none doubled, at most two missed. Returns who fired them."""
    jobs = Job.objects.filter(type="qa.record", run_at__gte=start, run_at__lte=end)
    doubled = list(jobs.values("run_at").annotate(n=Count("id")).filter(n__gt=1))
    assert doubled == [], f"{name}: ticks enqueued twice: {doubled}"
    expected = int((end - start).total_seconds()) + 1
    fired = jobs.count()
    assert expected >= PHASE - 3, (name, expected)
    assert expected - fired <= 2, f"{name}: {expected - fired} of {expected} ticks missed"
    ticks = CronTick.objects.filter(schedule__name="every-second", tick_at__gte=start,
                                    tick_at__lte=end)
    assert ticks.count() == fired
    return set(ticks.values_list("fired_by", flat=True))


def test_three_schedulers_fire_every_tick_once_even_after_a_kill_9(workers):
    victim = workers.start("--concurrency", "2", edgejobs=SETTINGS)
    survivor = workers.start("--concurrency", "2", edgejobs=SETTINGS)
    scheduler = workers.start("--scheduler-only", edgejobs=SETTINGS)
    procs = (victim, survivor, scheduler)
    wait_for(lambda: all(("queues=" in workers.output(p) or "scheduler: running"
                          in workers.output(p)) for p in procs),
             timeout=30, message="three processes up")
    wait_for(lambda: Job.objects.filter(type="qa.record").exists(), timeout=15,
             message="the first tick")
    time.sleep(1.5)  # the schedulers' first passes are behind them

    phase1_start = whole_second(timezone.now(), up=True)
    time.sleep(PHASE)
    assert all(p.poll() is None for p in procs), [workers.output(p) for p in procs]
    victim.send_signal(signal.SIGKILL)
    victim.wait(10)
    killed_at = timezone.now()
    phase1_end = whole_second(killed_at, up=False) - timedelta(seconds=1)

    time.sleep(PHASE)
    phase2_end = whole_second(timezone.now(), up=False) - timedelta(seconds=2)
    time.sleep(1)  # let the last ticks of the window commit
    assert survivor.poll() is None and scheduler.poll() is None

    fired_by_1 = check_phase(phase1_start, phase1_end, "three schedulers")
    fired_by_2 = check_phase(phase1_end + timedelta(seconds=1), phase2_end,
                             "after the kill -9")
    # Every process really scheduled (the race was real); after the kill, the survivors.
    pids = {str(p.pid) for p in procs}
    assert {f.rsplit(":", 1)[1] for f in fired_by_1} == pids, fired_by_1
    assert {f.rsplit(":", 1)[1] for f in fired_by_2} >= pids - {str(victim.pid)}, fired_by_2
    late = CronTick.objects.filter(tick_at__gt=killed_at)
    assert not late.filter(fired_by__endswith=f":{victim.pid}").exists()
    # The jobs ran on the workers that are left.
    assert Job.objects.filter(type="qa.record", status="completed").count() >= 2 * PHASE - 10
