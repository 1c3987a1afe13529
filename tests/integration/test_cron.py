"""Cron schedules on a real database: the API, validation, and the Scheduler with an injected
clock (catch-up, overlap, pause/resume, DST, and two schedulers racing for one tick)."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.core.checks import run_checks
from django.db import IntegrityError, connection, transaction
from django.test import override_settings

from django_edgejobs import (
    UnknownJobType,
    add_cron,
    edit_cron,
    list_crons,
    pause_cron,
    remove_cron,
    resume_cron,
    trigger_cron,
)
from django_edgejobs.models import CronSchedule, CronTick, Job
from django_edgejobs.runtime.scheduler import Scheduler
from django_edgejobs.services.schedules import sync_declared
from django_edgejobs.store.cron import CronStore
from tests.conftest import wait_for

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def handler(register):
    register("t.cron", queue="reports", priority=3, max_attempts=7)
    return "t.cron"


def backdate(name: str, to: datetime = T0 - timedelta(days=1)) -> CronSchedule:
    """Make a schedule live since ``to`` (the tests' clock is in the past)."""
    CronSchedule.objects.filter(name=name).update(active_since=to)
    return CronSchedule.objects.get(name=name)


def jobs_of(name: str) -> list[Job]:
    return [j for j in Job.objects.order_by("run_at") if f"cron:{name}" in j.tags]


def ticks_of(name: str) -> list[CronTick]:
    return list(CronTick.objects.filter(schedule__name=name).order_by("tick_at"))


# -- the API --------------------------------------------------------------------------------

def test_add_cron_stores_the_definition_and_lists_it(handler):
    schedule = add_cron("daily-report", "0 9 * * 1-5", handler, {"kind": "daily"},
                        timezone="America/New_York", tags=["reports"], timeout=30)
    assert schedule.pk and schedule.enabled and schedule.status == "active"
    assert (schedule.cron, schedule.type, schedule.payload, schedule.timezone) == (
        "0 9 * * 1-5", handler, {"kind": "daily"}, "America/New_York")
    assert schedule.allow_overlap is False and schedule.source == "api"
    assert schedule.describe() == "At 09:00, Monday through Friday (America/New_York)"
    after = datetime(2026, 6, 5, 14, tzinfo=UTC)  # a Friday, 10:00 in New York
    assert [f.isoformat() for f in schedule.next_fire_times(3, after=after)] == [
        "2026-06-08T09:00:00-04:00", "2026-06-09T09:00:00-04:00", "2026-06-10T09:00:00-04:00"]
    add_cron("b-paused", "* * * * *", handler, enabled=False)
    assert [s.name for s in list_crons()] == ["b-paused", "daily-report"]
    assert [s.name for s in list_crons("active")] == ["daily-report"]
    assert [s.name for s in list_crons(status="paused")] == ["b-paused"]
    with pytest.raises(ValueError, match="status must be"):
        list_crons("stopped")


@pytest.mark.parametrize(("kwargs", "problem"), [
    ({"cron": "* * * *"}, r"invalid cron expression '\* \* \* \*': it has 4 field"),
    ({"cron": "0 0 31 2 *"}, "never fires"),
    ({"timezone": "Europe/Pariss"},
     "unknown time zone 'Europe/Pariss'; did you mean 'Europe/Paris'"),
    ({"type": "t.nope"}, "no handler is registered for job type 't.nope'"),
    ({"payload": {"when": datetime(2026, 1, 1)}}, "payload\\['when'\\] is a datetime"),
    ({"priority": "high"}, "priority must be an integer"),
    ({"max_attempts": 0}, "max_attempts must be >= 1"),
    ({"tags": "x"}, "tags must be a list"),
    ({"allow_overlap": "no"}, "allow_overlap must be True or False"),
    ({"name": "x" * 196}, "at most 195 characters"),
    ({"name": ""}, "non-empty string"),
])
def test_add_cron_refuses_bad_input_naming_the_problem(handler, kwargs, problem):
    args = {"name": "bad", "cron": "* * * * *", "type": handler, **kwargs}
    name, cron, job_type = args.pop("name"), args.pop("cron"), args.pop("type")
    with pytest.raises(ValueError, match=problem):
        add_cron(name, cron, job_type, **args)
    assert not CronSchedule.objects.exists()


def test_unregistered_type_is_unknown_job_type(handler):
    with pytest.raises(UnknownJobType, match=r"add_cron\('x'\): .*'t.crom'.*did you mean 't.cron'"):
        add_cron("x", "* * * * *", "t.crom")


def test_duplicate_name_is_refused(handler):
    add_cron("once", "* * * * *", handler)
    with pytest.raises(ValueError, match="'once' already exists"):
        add_cron("once", "0 * * * *", handler)
    assert CronSchedule.objects.get(name="once").cron == "* * * * *"


def test_edit_cron_validates_and_restarts_on_a_new_expression(handler):
    add_cron("e", "0 * * * *", handler)
    since = backdate("e").active_since
    assert edit_cron("e", tags=["x"]) is True  # the other fields keep their defaults
    assert CronSchedule.objects.get(name="e").queue == ""
    assert edit_cron("e", payload={"v": 2}, priority=9, queue="emails") is True
    schedule = CronSchedule.objects.get(name="e")
    assert (schedule.payload, schedule.priority, schedule.queue) == ({"v": 2}, 9, "emails")
    assert schedule.active_since == since  # options only: catch-up rules unchanged
    with pytest.raises(ValueError, match=r"edit_cron\('e'\): unknown time zone"):
        edit_cron("e", timezone="Nowhere/City")
    with pytest.raises(ValueError, match="unknown option 'cronn'; did you mean 'cron'"):
        edit_cron("e", cronn="* * * * *")
    assert edit_cron("e", cron="30 * * * *") is True
    assert CronSchedule.objects.get(name="e").active_since > since
    assert edit_cron("missing", cron="* * * * *") is False


def test_pause_resume_remove_return_whether_they_changed_something(handler):
    add_cron("p", "* * * * *", handler)
    assert pause_cron("p") is True and pause_cron("p") is False
    assert CronSchedule.objects.get(name="p").status == "paused"
    assert resume_cron("p") is True and resume_cron("p") is False
    assert pause_cron("nope") is False and resume_cron("nope") is False
    assert remove_cron("p") is True and remove_cron("p") is False
    assert not CronSchedule.objects.exists()


# -- the scheduler --------------------------------------------------------------------------

def test_a_tick_enqueues_one_job_with_the_schedules_options(handler):
    add_cron("opts", "*/5 * * * *", handler, {"n": 1}, tags=["nightly"], retry_delay=7,
             retry_backoff=False, retry_delay_max=70, timeout=12)
    backdate("opts")
    scheduler = Scheduler()
    assert scheduler.run_once(now=T0 + timedelta(seconds=3)) == {"enqueued": 1}
    assert scheduler.run_once(now=T0 + timedelta(seconds=40)) == {}  # same tick: done
    [job] = jobs_of("opts")
    assert job.run_at == T0 and job.payload == {"n": 1} and job.status == "pending"
    assert job.tags == ["nightly", "cron:opts"]
    # The handler's defaults where the schedule says nothing (queue, priority, attempts).
    assert (job.queue, job.priority, job.max_attempts) == ("reports", 3, 7)
    assert (job.retry_delay, job.retry_backoff, job.retry_delay_max, job.timeout) == (
        7, False, 70, 12)
    [tick] = ticks_of("opts")
    assert (tick.tick_at, tick.outcome, tick.job_id) == (T0, "enqueued", job.id)
    schedule = CronSchedule.objects.get(name="opts")
    assert (schedule.last_tick_at, schedule.last_outcome, schedule.last_job_id) == (
        T0, "enqueued", job.id)
    assert schedule.last_run_at is not None and schedule.last_job == job


def test_schedule_options_override_the_handler_defaults(handler):
    add_cron("o2", "* * * * *", handler, queue="emails", priority=-1, max_attempts=2)
    backdate("o2")
    Scheduler().run_once(now=T0)
    [job] = jobs_of("o2")
    assert (job.queue, job.priority, job.max_attempts) == ("emails", -1, 2)


def test_no_tick_from_before_the_schedule_existed(handler):
    add_cron("new", "0 9 * * *", handler)
    schedule = CronSchedule.objects.get(name="new")
    assert Scheduler().run_once(now=schedule.active_since + timedelta(hours=1)) == {}
    assert Scheduler().run_once(now=schedule.active_since + timedelta(days=1)) == {"enqueued": 1}


def test_after_downtime_one_catch_up_run_for_the_latest_missed_tick(handler):
    add_cron("catch", "*/5 * * * *", handler, allow_overlap=True)
    backdate("catch")
    scheduler = Scheduler()
    scheduler.run_once(now=T0)
    # Down for 62 minutes: twelve ticks missed; only the latest (13:00) runs.
    assert scheduler.run_once(now=T0 + timedelta(minutes=62)) == {"enqueued": 1}
    assert [j.run_at for j in jobs_of("catch")] == [T0, T0 + timedelta(hours=1)]
    assert Scheduler().run_once(now=T0 + timedelta(minutes=63)) == {}
    assert Scheduler().run_once(now=T0 + timedelta(minutes=65)) == {"enqueued": 1}


def test_overlap_is_skipped_and_recorded_while_the_previous_run_is_active(handler):
    add_cron("slow", "* * * * *", handler)
    add_cron("fast", "* * * * *", handler, allow_overlap=True)
    backdate("slow"), backdate("fast")
    scheduler = Scheduler()
    assert scheduler.run_once(now=T0) == {"enqueued": 2}
    [first] = jobs_of("slow")
    for status in ("pending", "waiting", "processing"):
        Job.objects.filter(id=first.id).update(status=status)
        minute = {"pending": 1, "waiting": 2, "processing": 3}[status]
        assert scheduler.run_once(now=T0 + timedelta(minutes=minute)) == {
            "skipped": 1, "enqueued": 1}
    ticks = ticks_of("slow")
    assert [t.outcome for t in ticks] == ["enqueued", "skipped", "skipped", "skipped"]
    assert ticks[-1].job_id is None and str(first.id) in ticks[-1].reason
    assert "processing" in ticks[-1].reason
    assert CronSchedule.objects.get(name="slow").last_outcome == "skipped"
    assert len(jobs_of("fast")) == 4  # allow_overlap=True: every tick runs
    Job.objects.filter(id=first.id).update(status="completed")
    assert scheduler.run_once(now=T0 + timedelta(minutes=4)) == {"enqueued": 2}
    assert len(jobs_of("slow")) == 2


def test_a_triggered_run_counts_as_the_previous_run(handler):
    add_cron("trig", "* * * * *", handler)
    backdate("trig")
    job = trigger_cron("trig")
    assert Scheduler().run_once(now=T0) == {"skipped": 1}
    Job.objects.filter(id=job.id).update(status="failed")
    assert Scheduler().run_once(now=T0 + timedelta(minutes=1)) == {"enqueued": 1}


def test_paused_schedules_do_not_fire_and_resume_does_not_catch_up(handler):
    add_cron("pz", "*/10 * * * *", handler, allow_overlap=True)
    backdate("pz")
    scheduler = Scheduler()
    scheduler.run_once(now=T0)
    pause_cron("pz")
    assert scheduler.run_once(now=T0 + timedelta(minutes=10)) == {}
    assert scheduler.run_once(now=T0 + timedelta(minutes=30)) == {}
    resume_cron("pz")
    CronSchedule.objects.filter(name="pz").update(active_since=T0 + timedelta(minutes=31))
    assert scheduler.run_once(now=T0 + timedelta(minutes=35)) == {}  # 12:30 was paused
    assert scheduler.run_once(now=T0 + timedelta(minutes=40)) == {"enqueued": 1}
    assert [j.run_at for j in jobs_of("pz")] == [T0, T0 + timedelta(minutes=40)]


def test_a_pause_between_reading_and_firing_wins(handler):
    add_cron("race", "* * * * *", handler)
    stale = backdate("race")
    pause_cron("race")
    assert Scheduler().fire(stale, T0) == "lost"
    assert not jobs_of("race") and not ticks_of("race")


def test_trigger_cron_enqueues_now_with_the_schedules_options(handler):
    add_cron("t", "0 0 1 1 *", handler, {"x": 1}, queue="emails", tags=["manual"],
             enabled=False)
    job = trigger_cron("t")
    assert job.type == handler and job.payload == {"x": 1} and job.queue == "emails"
    assert job.tags == ["manual", "cron:t"] and job.status == "pending"
    assert abs((job.run_at - datetime.now(UTC)).total_seconds()) < 60
    schedule = CronSchedule.objects.get(name="t")
    assert schedule.last_outcome == "triggered" and schedule.last_job_id == job.id
    assert not ticks_of("t")  # a run by hand is not a tick
    with pytest.raises(ValueError, match="no schedule named 'tt'; did you mean 't'"):
        trigger_cron("tt")


def test_a_type_without_a_handler_at_fire_time_records_an_error(handler, register):
    register("t.gone")
    add_cron("gone", "* * * * *", "t.gone")
    backdate("gone")
    from django_edgejobs.registry import get_registry

    get_registry().unregister("t.gone")
    assert Scheduler().run_once(now=T0) == {"error": 1}
    [tick] = ticks_of("gone")
    assert tick.outcome == "error" and "no handler is registered" in tick.reason
    assert not Job.objects.exists()


def test_new_york_nights_through_the_scheduler(handler):
    spring_night, fall_night = (datetime(2026, 3, 8, 4, tzinfo=UTC),
                                datetime(2026, 11, 1, 3, tzinfo=UTC))
    add_cron("spring", "30 2 * * *", handler, timezone="America/New_York", allow_overlap=True)
    add_cron("fall", "30 1 * * *", handler, timezone="America/New_York", allow_overlap=True)
    backdate("spring", spring_night)
    backdate("fall", fall_night)
    scheduler = Scheduler()
    for night in (spring_night, fall_night):
        for step in range(0, 6 * 3600, 45):  # a pass every 45 s for six hours
            scheduler.run_once(now=night + timedelta(seconds=step))
        pause_cron("spring")
    assert [j.run_at for j in jobs_of("spring")] == [datetime(2026, 3, 8, 7, tzinfo=UTC)]
    assert [j.run_at for j in jobs_of("fall")] == [datetime(2026, 11, 1, 5, 30, tzinfo=UTC)]


# -- once per tick, however many schedulers -------------------------------------------------

def test_two_schedulers_with_the_same_stale_view_enqueue_one_job(handler):
    add_cron("dup", "* * * * *", handler)
    backdate("dup")
    a, b = Scheduler(), Scheduler()
    view_a, view_b = a.cron.enabled_schedules(), b.cron.enabled_schedules()
    assert a.run_schedule(view_a[0], T0) == "enqueued"
    assert b.run_schedule(view_b[0], T0) == "lost"
    assert len(jobs_of("dup")) == 1 and len(ticks_of("dup")) == 1


def test_the_unique_constraint_alone_stops_a_second_job(handler):
    """Even when the schedule row's cursor is rewound (so the compare-and-set lets a second
    scheduler through), the tick's row refuses the duplicate and its job is rolled back."""
    add_cron("uniq", "* * * * *", handler)
    stale = backdate("uniq")
    assert Scheduler().fire(stale, T0) == "enqueued"
    CronSchedule.objects.filter(name="uniq").update(last_tick_at=None)
    assert Scheduler().fire(stale, T0) == "lost"
    assert len(jobs_of("uniq")) == 1
    with pytest.raises(IntegrityError), transaction.atomic():
        CronTick.objects.create(schedule=stale, tick_at=T0, outcome="enqueued")


def test_each_pass_draws_its_own_interval_so_schedulers_never_phase_lock():
    """A jitter drawn once per process let two schedulers whose intervals both came out near
    0.5 s keep their order on the second for minutes: the one behind won no tick. Each pass
    now draws afresh, within 20% of the default; an interval given is kept as is."""
    from django_edgejobs.runtime.scheduler import DEFAULT_INTERVAL

    scheduler = Scheduler()
    draws = {scheduler.interval for _ in range(50)}
    assert len(draws) > 40
    assert all(0.8 * DEFAULT_INTERVAL <= d <= 1.2 * DEFAULT_INTERVAL for d in draws)
    assert {Scheduler(interval=0.25).interval for _ in range(5)} == {0.25}


@pytest.mark.django_db(transaction=True)
def test_schedulers_racing_on_threads_enqueue_one_job_per_tick(handler):
    add_cron("race", "* * * * * *", handler, allow_overlap=True)
    backdate("race")
    ticks = [T0 + timedelta(seconds=n) for n in range(15)]
    barrier = threading.Barrier(3)
    results: list[dict] = []
    errors: list[BaseException] = []

    def run() -> None:
        scheduler = Scheduler()
        try:
            for now in ticks:
                barrier.wait(timeout=30)
                results.append(scheduler.run_once(now=now))
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert sorted(j.run_at for j in jobs_of("race")) == ticks
    assert sum(r.get("enqueued", 0) for r in results) == 15
    # The schedulers really raced: some passes found their tick taken.
    assert sum(r.get("lost", 0) for r in results) >= 1


# -- declared schedules ---------------------------------------------------------------------

def test_sync_declared_creates_updates_and_pauses_the_undeclared(handler):
    declared = {"nightly": {"cron": "0 3 * * *", "type": handler, "payload": {"a": 1},
                            "timezone": "Europe/Paris", "tags": ("n",)}}
    add_cron("by-api", "* * * * *", handler)
    assert sync_declared(declared)["created"] == ["nightly"]
    nightly = CronSchedule.objects.get(name="nightly")
    assert (nightly.source, nightly.enabled, nightly.timezone) == (
        "settings", True, "Europe/Paris")
    assert sync_declared(declared) == {"created": [], "updated": [], "undeclared": [],
                                       "invalid": []}
    pause_cron("nightly")  # people own the state: a restart does not undo a pause
    assert sync_declared(declared)["updated"] == []
    assert CronSchedule.objects.get(name="nightly").enabled is False
    declared["nightly"]["cron"] = "0 4 * * *"
    assert sync_declared(declared)["updated"] == ["nightly"]
    nightly = CronSchedule.objects.get(name="nightly")
    assert (nightly.cron, nightly.enabled) == ("0 4 * * *", False)
    assert sync_declared({})["undeclared"] == ["nightly"]
    nightly = CronSchedule.objects.get(name="nightly")
    assert (nightly.source, nightly.enabled) == ("undeclared", False)
    assert CronSchedule.objects.get(name="by-api").enabled  # never touched
    declared["nightly"]["enabled"] = True
    assert sync_declared(declared)["updated"] == ["nightly"]
    assert CronSchedule.objects.get(name="nightly").enabled is True
    bad = {"broken": {"cron": "nope", "type": handler}}
    assert sync_declared(bad)["invalid"] == ["broken"]


def test_worker_start_syncs_declared_schedules(handler):
    cron = {"from-settings": {"cron": "*/2 * * * *", "type": handler}}
    with override_settings(EDGEJOBS={"CRON": cron}):
        Scheduler().sync_declared()
    assert CronSchedule.objects.get(name="from-settings").source == "settings"


def test_system_checks_report_bad_declarations(handler):
    cron = {
        "ok": {"cron": "0 9 * * *", "type": handler},
        "expr": {"cron": "0 9 * *", "type": handler},
        "zone": {"cron": "0 9 * * *", "type": handler, "timezone": "Mars/Base"},
        "type": {"cron": "0 9 * * *", "type": "t.none"},
        "other": {"cron": "0 9 * * *", "type": handler, "priorty": 3},
        "shape": "0 9 * * *",
    }
    with override_settings(EDGEJOBS={"CRON": cron}):
        errors = [e for e in run_checks() if e.id.startswith("edgejobs.E01")]
    found = sorted((e.id, re.search(r"\['CRON'\]\[('\w+')\]", e.msg).group(1)) for e in errors)
    assert found == [("edgejobs.E010", "'shape'"), ("edgejobs.E011", "'expr'"),
                     ("edgejobs.E012", "'zone'"), ("edgejobs.E013", "'type'"),
                     ("edgejobs.E014", "'other'")]
    assert all(e.hint for e in errors)
    with override_settings(EDGEJOBS={"CRON": ["x"]}):
        assert [e.id for e in run_checks() if e.id.startswith("edgejobs.E01")] == [
            "edgejobs.E010"]


# -- housekeeping and the worker ------------------------------------------------------------

def test_old_ticks_are_pruned_except_each_schedules_latest(handler):
    add_cron("old", "* * * * *", handler, allow_overlap=True)
    backdate("old", datetime(2020, 1, 1, tzinfo=UTC))
    scheduler = Scheduler(prune_interval=3600)
    for minute in range(3):
        scheduler.run_once(now=datetime(2020, 1, 2, tzinfo=UTC) + timedelta(minutes=minute))
    assert len(ticks_of("old")) == 3
    assert CronStore(scheduler.store).prune_ticks(days=30) == 2
    assert [t.tick_at for t in ticks_of("old")] == [datetime(2020, 1, 2, 0, 2, tzinfo=UTC)]


@pytest.mark.django_db(transaction=True)
def test_a_worker_process_runs_the_scheduler_and_the_jobs(register):
    from django_edgejobs.runtime.process import Process
    from django_edgejobs.runtime.worker import Worker

    ran = []
    register("t.tick", lambda payload, ctx: ran.append(ctx.job_id))
    cron = {"every-second": {"cron": "* * * * * *", "type": "t.tick"}}
    with override_settings(EDGEJOBS={"CRON": cron, "POLL_INTERVAL": 0.05}):
        process = Process(Worker(["default"], concurrency=1, worker_id="cron-test",
                                 stop_when=lambda: len(ran) >= 2), supervisor=False)
        thread = threading.Thread(target=process.run)
        thread.start()
        try:
            wait_for(lambda: len(ran) >= 2, timeout=15, message="two ticks ran")
        finally:
            process.request_stop()
            thread.join(30)
    assert not thread.is_alive()
    runs = sorted(j.run_at for j in Job.objects.filter(status="completed"))
    assert len(runs) >= 2 and all(r.microsecond == 0 for r in runs)
    assert len(set(runs)) == len(runs)


# -- trigger_cron and allow_overlap ---------------------------------------------------------

@pytest.mark.parametrize("status", ["pending", "waiting", "processing"])
def test_trigger_cron_starts_no_second_run_while_the_previous_one_is_active(handler, status):
    add_cron("solo", "0 0 1 1 *", handler, {"n": 1}, enabled=False)  # paused or not
    first = trigger_cron("solo")
    Job.objects.filter(id=first.id).update(status=status)
    again = trigger_cron("solo")  # returns the run that is still active, whole
    assert isinstance(again, Job) and again.id == first.id
    assert (again.status, again.payload, again.tags) == (status, {"n": 1}, ["cron:solo"])
    assert [j.id for j in jobs_of("solo")] == [first.id]
    schedule = CronSchedule.objects.get(name="solo")
    assert (schedule.last_job_id, schedule.last_outcome) == (first.id, "triggered")
    Job.objects.filter(id=first.id).update(status="completed")
    second = trigger_cron("solo")
    assert second.id != first.id and second.status == "pending"
    assert len(jobs_of("solo")) == 2
    assert CronSchedule.objects.get(name="solo").last_job_id == second.id


def test_trigger_cron_counts_a_ticks_run_as_the_previous_run(handler):
    add_cron("ticked", "* * * * *", handler)
    backdate("ticked")
    assert Scheduler().run_once(now=T0) == {"enqueued": 1}
    [tick_job] = jobs_of("ticked")
    assert trigger_cron("ticked").id == tick_job.id
    assert len(jobs_of("ticked")) == 1


def test_trigger_cron_with_allow_overlap_always_starts_a_run(handler):
    add_cron("many", "* * * * *", handler, allow_overlap=True)
    assert len({trigger_cron("many").id for _ in range(3)}) == 3 == len(jobs_of("many"))


def test_trigger_cron_reports_whether_it_started_a_run(handler):
    from django_edgejobs.services.schedules import run_now

    add_cron("told", "0 0 1 1 *", handler)
    job, started = run_now("told")
    assert started is True
    assert run_now("told") == (job, False)


def _slow_overlap_checks(monkeypatch, seconds: float = 0.2) -> None:
    """Make every overlap check linger after its query, so that without a lock around check
    and write, concurrent callers would all find no active run."""
    import time

    check = CronStore.active_run

    def slow(self, schedule, **kwargs):
        found = check(self, schedule, **kwargs)
        time.sleep(seconds)
        return found

    monkeypatch.setattr(CronStore, "active_run", slow)


def _race(*calls: Any) -> list:
    """Run the calls at once on threads (own connections); return their results."""
    barrier = threading.Barrier(len(calls))
    results: list = []
    errors: list[BaseException] = []

    def run(call: Any) -> None:
        try:
            barrier.wait(timeout=30)
            results.append(call())
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    return results


@pytest.mark.django_db(transaction=True)
def test_concurrent_triggers_start_one_run(handler, monkeypatch):
    add_cron("busy", "0 0 1 1 *", handler)
    _slow_overlap_checks(monkeypatch)
    ids = _race(*[lambda: trigger_cron("busy").id] * 4)
    [job] = jobs_of("busy")
    assert ids == [job.id] * 4


@pytest.mark.django_db(transaction=True)
def test_a_trigger_and_a_tick_racing_start_one_run(handler, monkeypatch):
    add_cron("both", "* * * * *", handler)
    backdate("both")
    _slow_overlap_checks(monkeypatch)
    results = _race(lambda: Scheduler().run_once(now=T0), lambda: trigger_cron("both"))
    [job] = jobs_of("both")
    outcome = next(r for r in results if isinstance(r, dict))
    triggered = next(r for r in results if isinstance(r, Job))
    assert triggered.id == job.id
    assert outcome in ({"enqueued": 1}, {"skipped": 1})


def test_admin_run_now_says_when_the_previous_run_is_still_active(handler, admin_client):
    from django.contrib.admin.models import LogEntry
    from django.urls import reverse

    schedule = add_cron("adm", "0 0 1 1 *", handler)
    url = reverse("admin:django_edgejobs_cronschedule_changelist")
    data = {"action": "run_now_selected", "index": "0", "_selected_action": [str(schedule.pk)]}
    first = [str(m) for m in admin_client.post(url, data, follow=True).context["messages"]]
    [job] = jobs_of("adm")
    assert first == [f'adm: enqueued job <a href="{reverse(
        "admin:django_edgejobs_job_change", args=[job.pk])}">{job.pk}</a>.']
    second = [str(m) for m in admin_client.post(url, data, follow=True).context["messages"]]
    assert len(second) == 1 and "adm: not started: its previous run" in second[0]
    assert f">{job.pk}</a> is still pending (allow_overlap is off)" in second[0]
    assert len(jobs_of("adm")) == 1
    assert LogEntry.objects.filter(change_message__startswith="Run now").count() == 1


def test_a_schedule_passes_its_flow_control_options_to_its_jobs(register):
    from django_edgejobs.services.schedules import build_cron_job

    register("t.cron", lambda payload, ctx: None)
    schedule = add_cron("limited", "* * * * *", "t.cron", {"acct": 3},
                        concurrency_key="acct:{acct}", concurrency_limit=1, rate_limit="6/m")
    job = build_cron_job(schedule)
    assert (job.concurrency_key, job.concurrency_limit, job.rate_key, job.rate_limit,
            job.rate_period) == ("acct:3", 1, "type:t.cron", 6, 60.0)
    with pytest.raises(ValueError, match="add_cron\\('bad'\\): rate_limit must be 'N/s'"):
        add_cron("bad", "* * * * *", "t.cron", rate_limit="often")
    with pytest.raises(ValueError, match="concurrency_key needs a concurrency_limit"):
        add_cron("bad", "* * * * *", "t.cron", concurrency_key="k")
