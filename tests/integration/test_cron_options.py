"""Cron options of issue #21 on a real database: ``run_on_init``, ``metadata``, the signals
``cron_scheduled`` / ``cron_unscheduled`` / ``cron_fired``, and the retry backoff modes that a
schedule (like ``@job``, ``enqueue``, ``edit_job`` and django.tasks) passes to its jobs."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.core.checks import run_checks
from django.db import connection, transaction
from django.test import override_settings

from django_edgejobs import (
    add_cron,
    edit_cron,
    edit_job,
    enqueue,
    enqueue_many,
    get_job_events,
    job,
    list_crons,
    pause_cron,
    remove_cron,
    resume_cron,
    trigger_cron,
)
from django_edgejobs import signals as ej_signals
from django_edgejobs.models import CronSchedule, Job
from django_edgejobs.runtime.scheduler import Scheduler
from django_edgejobs.services.export import job_dict
from django_edgejobs.services.schedules import build_cron_job, sync_declared
from django_edgejobs.testing import run_jobs

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def handler(register):
    register("t.cron", queue="reports")
    return "t.cron"


def jobs_of(name: str) -> list[Job]:
    return [j for j in Job.objects.order_by("created_at") if f"cron:{name}" in j.tags]


def backdate(name: str) -> CronSchedule:
    CronSchedule.objects.filter(name=name).update(active_since=T0 - timedelta(days=1))
    return CronSchedule.objects.get(name=name)


class Received:
    """Every cron signal sent, as ``(signal name, kwargs)``; thread-safe."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.lock = threading.Lock()

    def __call__(self, name: str) -> Any:
        def receive(sender: Any, signal: Any, **kwargs: Any) -> None:
            assert sender is CronSchedule
            with self.lock:
                self.sent.append((name, kwargs))
        return receive

    def names(self) -> list[tuple[str, str, Any]]:
        """``(signal, schedule name, created/removed/initial)`` of each one sent."""
        flag = {"cron_scheduled": "created", "cron_unscheduled": "removed",
                "cron_fired": "initial"}
        return [(n, k["schedule"].name, k[flag[n]]) for n, k in self.sent]

    def clear(self) -> None:
        self.sent.clear()


@pytest.fixture
def received() -> Iterator[Received]:
    got = Received()
    receivers = {name: got(name) for name in ("cron_scheduled", "cron_unscheduled",
                                              "cron_fired")}
    for name, receiver in receivers.items():
        getattr(ej_signals, name).connect(receiver, weak=False)
    yield got
    for name, receiver in receivers.items():
        getattr(ej_signals, name).disconnect(receiver)


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """Run on-commit callbacks as the outer (test) transaction would when it commits."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


# -- run_on_init ----------------------------------------------------------------------------

def test_run_on_init_enqueues_one_run_with_the_schedule(handler):
    schedule = add_cron("boot", "0 0 1 1 *", handler, {"n": 1}, run_on_init=True,
                        tags=["x"], retry_backoff="linear")
    [run] = jobs_of("boot")
    assert (run.type, run.payload, run.tags, run.queue) == (handler, {"n": 1},
                                                            ["x", "cron:boot"], "reports")
    assert run.backoff_mode == "linear"
    schedule.refresh_from_db()
    assert (schedule.last_outcome, schedule.last_job_id) == ("initial", run.id)
    assert schedule.last_run_at is not None and schedule.last_tick_at is None
    # Never again: edits, pause/resume, ticks of its own.
    assert edit_cron("boot", payload={"n": 2}, cron="* * * * *") is True
    pause_cron("boot"), resume_cron("boot")
    assert [j.id for j in jobs_of("boot")] == [run.id]


def test_without_run_on_init_nothing_runs_at_creation(handler):
    add_cron("plain", "0 0 1 1 *", handler)
    assert jobs_of("plain") == []
    assert CronSchedule.objects.get(name="plain").last_outcome == ""


def test_run_on_init_of_a_schedule_created_paused_runs_nothing_not_even_on_resume(handler):
    add_cron("later", "0 0 1 1 *", handler, enabled=False, run_on_init=True)
    resume_cron("later")
    assert jobs_of("later") == []


def test_run_on_init_rolls_back_with_the_schedule(handler):
    with pytest.raises(RuntimeError), transaction.atomic():
        add_cron("undone", "0 0 1 1 *", handler, run_on_init=True)
        assert len(jobs_of("undone")) == 1  # written in the same transaction
        raise RuntimeError("roll back")
    assert not CronSchedule.objects.filter(name="undone").exists()
    assert jobs_of("undone") == []


def test_run_on_init_respects_allow_overlap_with_a_former_schedules_active_run(handler):
    add_cron("again", "0 0 1 1 *", handler, run_on_init=True)
    [first] = jobs_of("again")
    remove_cron("again")  # its run is still pending
    schedule = add_cron("again", "0 0 1 1 *", handler, run_on_init=True)
    assert [j.id for j in jobs_of("again")] == [first.id]
    assert CronSchedule.objects.get(pk=schedule.pk).last_outcome == "skipped"
    remove_cron("again")
    add_cron("again", "0 0 1 1 *", handler, run_on_init=True, allow_overlap=True)
    assert len(jobs_of("again")) == 2


def test_run_on_init_must_be_a_bool_and_edit_cron_refuses_it(handler):
    with pytest.raises(ValueError, match=r"add_cron\('b'\): run_on_init must be True or False"):
        add_cron("b", "0 0 1 1 *", handler, run_on_init="yes")  # type: ignore[arg-type]
    assert not CronSchedule.objects.exists()
    add_cron("e", "0 0 1 1 *", handler)
    with pytest.raises(ValueError, match=r"edit_cron\('e'\): run_on_init applies only when a "
                                         r"schedule is created .*use trigger_cron"):
        edit_cron("e", run_on_init=True)
    assert jobs_of("e") == []


def test_declared_run_on_init_runs_once_on_creation_never_on_resync_or_change(handler):
    declared = {"warm": {"cron": "0 3 * * *", "type": handler, "run_on_init": True}}
    assert sync_declared(declared)["created"] == ["warm"]
    [run] = jobs_of("warm")
    assert CronSchedule.objects.get(name="warm").last_outcome == "initial"
    with override_settings(EDGEJOBS={"CRON": declared}):
        Scheduler().sync_declared()  # a worker (re)start
        Scheduler().sync_declared()
    declared["warm"]["cron"] = "0 4 * * *"  # a changed entry is an update, not a creation
    assert sync_declared(declared)["updated"] == ["warm"]
    assert sync_declared({})["undeclared"] == ["warm"]  # undeclared, then declared again
    assert sync_declared(declared)["updated"] == ["warm"]
    declared["warm"]["run_on_init"] = False
    assert sync_declared(declared)["updated"] == ["warm"]
    assert [j.id for j in jobs_of("warm")] == [run.id]


def test_run_on_init_passes_the_system_check_and_a_bad_value_does_not(handler):
    cron = {"ok": {"cron": "0 9 * * *", "type": handler, "run_on_init": True},
            "bad": {"cron": "0 9 * * *", "type": handler, "run_on_init": 1}}
    with override_settings(EDGEJOBS={"CRON": cron}):
        errors = [e for e in run_checks() if e.id.startswith("edgejobs.E01")]
    assert [e.id for e in errors] == ["edgejobs.E014"]
    assert "['bad']: run_on_init must be True or False" in errors[0].msg


@pytest.mark.django_db(transaction=True)
def test_workers_syncing_the_same_settings_at_once_enqueue_exactly_one_initial_run(
        handler, received):
    """Eight workers start together with the same EDGEJOBS["CRON"]: each schedule is created
    by one of them, which alone writes its initial run and sends its signals."""
    names = [f"init-{n}" for n in range(6)]
    declared = {name: {"cron": "0 3 * * *", "type": handler, "run_on_init": True}
                for name in names}
    barrier = threading.Barrier(8)
    results: list[dict] = []
    errors: list[BaseException] = []

    def start_worker() -> None:
        try:
            barrier.wait(timeout=30)
            results.append(sync_declared(declared))
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=start_worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert len(results) == 8
    assert sorted(n for r in results for n in r["created"]) == names  # each created once
    for name in names:
        [run] = jobs_of(name)
        assert CronSchedule.objects.get(name=name).last_job_id == run.id
    fired = [k for n, k in received.sent if n == "cron_fired"]
    assert sorted(k["schedule"].name for k in fired) == names
    assert all(k["initial"] and k["triggered"] for k in fired)
    scheduled = [k["schedule"].name for n, k in received.sent if n == "cron_scheduled"]
    assert sorted(scheduled) == names


# -- metadata -------------------------------------------------------------------------------

def test_metadata_is_stored_listed_and_edited(handler):
    add_cron("m", "0 0 * * *", handler, metadata={"owner": "ops", "runbook": ["a", 1]})
    [schedule] = list_crons()
    assert schedule.metadata == {"owner": "ops", "runbook": ["a", 1]}
    assert edit_cron("m", metadata={"owner": "data"}) is True
    assert list_crons()[0].metadata == {"owner": "data"}
    assert edit_cron("m", payload={"x": 1}) is True  # other edits keep it
    assert list_crons()[0].metadata == {"owner": "data"}
    assert edit_cron("m", metadata=None) is True
    assert list_crons()[0].metadata == {}
    add_cron("none", "0 0 * * *", handler)
    assert CronSchedule.objects.get(name="none").metadata == {}


@pytest.mark.parametrize(("metadata", "message"), [
    (["a"], r"add_cron\('m'\): metadata must be a dict \(a JSON object\), got list"),
    ({"when": datetime(2026, 1, 1)}, r"add_cron\('m'\): metadata\['when'\] is a datetime"),
    ({"big": "x" * 20_000}, r"metadata is 20,010 bytes as JSON, over the limit of 16,384"),
])
def test_bad_metadata_is_refused_before_anything_is_written(handler, metadata, message):
    with pytest.raises(ValueError, match=message):
        add_cron("m", "0 0 * * *", handler, metadata=metadata)
    assert not CronSchedule.objects.exists()
    add_cron("m", "0 0 * * *", handler, metadata={"ok": True})
    with pytest.raises(ValueError, match=message.replace("add_cron", "edit_cron")):
        edit_cron("m", metadata=metadata)
    assert CronSchedule.objects.get(name="m").metadata == {"ok": True}


def test_declared_metadata_is_synced(handler):
    declared = {"d": {"cron": "0 3 * * *", "type": handler, "metadata": {"team": "a"}}}
    sync_declared(declared)
    assert CronSchedule.objects.get(name="d").metadata == {"team": "a"}
    declared["d"]["metadata"] = {"team": "b"}
    assert sync_declared(declared)["updated"] == ["d"]
    assert CronSchedule.objects.get(name="d").metadata == {"team": "b"}


def test_the_mcp_servers_list_crons_includes_metadata_redacted(handler):
    from django.contrib.auth.models import Permission, User

    from django_edgejobs.mcp_server import Tools

    user = User.objects.create_user("viewer", password="pw")
    user.user_permissions.set(Permission.objects.filter(codename="view_cronschedule"))
    add_cron("m", "0 0 * * *", handler, metadata={"team": "ops", "password": "hunter2"})
    [row] = Tools("viewer").list_crons()
    assert row["metadata"]["team"] == "ops"
    assert row["metadata"]["password"] != "hunter2"


# -- signals --------------------------------------------------------------------------------

def test_cron_scheduled_and_unscheduled_follow_each_actual_change(handler, received, committed):
    with committed():
        add_cron("s", "0 0 * * *", handler)
        add_cron("paused", "0 0 * * *", handler, enabled=False)  # not firing: nothing
    assert received.names() == [("cron_scheduled", "s", True)]
    [(_, sent)] = received.sent
    assert sent["schedule"].pk == CronSchedule.objects.get(name="s").pk
    received.clear()
    with committed():
        assert pause_cron("s") and not pause_cron("s")
        assert resume_cron("s") and not resume_cron("s")
        edit_cron("s", payload={"v": 1})  # no change of state
        edit_cron("s", enabled=False)
        edit_cron("s", enabled=False)
        edit_cron("s", enabled=True)
        remove_cron("s")
        remove_cron("s")
        remove_cron("paused")
    assert received.names() == [
        ("cron_unscheduled", "s", False), ("cron_scheduled", "s", False),
        ("cron_unscheduled", "s", False), ("cron_scheduled", "s", False),
        ("cron_unscheduled", "s", True), ("cron_unscheduled", "paused", True)]
    assert [k["schedule"].enabled for _, k in received.sent] == [
        False, True, False, True, True, False]


def test_cron_signals_wait_for_the_commit_and_a_rollback_sends_none(handler, received,
                                                                    committed):
    with committed() as callbacks:
        with pytest.raises(RuntimeError), transaction.atomic():
            add_cron("gone", "0 0 * * *", handler, run_on_init=True)
            raise RuntimeError("roll back")
        with transaction.atomic():
            add_cron("kept", "0 0 * * *", handler, run_on_init=True)
            assert received.sent == []  # not before the commit
    assert len(callbacks) == 2
    assert received.names() == [("cron_scheduled", "kept", True),
                                ("cron_fired", "kept", True)]


def test_declared_schedules_send_signals_as_they_start_and_stop_firing(handler, received,
                                                                       committed):
    declared = {"d": {"cron": "0 3 * * *", "type": handler}}
    with committed():
        sync_declared(declared)
        sync_declared(declared)  # unchanged: nothing
        sync_declared({})  # undeclared: paused
        sync_declared({})
        sync_declared(declared)  # declared again: enabled again
        declared["d"]["enabled"] = False
        sync_declared(declared)
    assert received.names() == [("cron_scheduled", "d", True), ("cron_unscheduled", "d", False),
                                ("cron_scheduled", "d", False),
                                ("cron_unscheduled", "d", False)]


def test_cron_fired_for_ticks_and_triggers_not_for_skips(handler, received, committed):
    add_cron("f", "* * * * *", handler)
    backdate("f")
    with committed():
        assert Scheduler().run_once(now=T0) == {"enqueued": 1}
        assert Scheduler().run_once(now=T0 + timedelta(minutes=1)) == {"skipped": 1}
        assert Scheduler().run_once(now=T0 + timedelta(minutes=1)) == {}
    [tick_job] = jobs_of("f")
    [(name, sent)] = received.sent
    assert name == "cron_fired"
    assert (sent["job"].id, sent["tick_at"], sent["triggered"], sent["initial"]) == (
        tick_job.id, T0, False, False)
    assert sent["schedule"].name == "f"
    received.clear()
    with committed():
        assert trigger_cron("f").id == tick_job.id  # still active: no run, no signal
    assert received.sent == []
    Job.objects.filter(id=tick_job.id).update(status="completed")
    with committed():
        triggered = trigger_cron("f")
    [(name, sent)] = received.sent
    assert (name, sent["job"].id, sent["tick_at"], sent["triggered"], sent["initial"]) == (
        "cron_fired", triggered.id, None, True, False)


def test_a_lost_tick_sends_nothing(handler, received, committed):
    add_cron("dup", "* * * * *", handler)
    stale = backdate("dup")
    with committed():
        assert Scheduler().fire(stale, T0) == "enqueued"
        assert Scheduler().fire(stale, T0) == "lost"
    assert [n for n, _ in received.sent] == ["cron_fired"]


# -- retry backoff modes reach every job ----------------------------------------------------

def columns(j: Job) -> tuple[Any, ...]:
    j.refresh_from_db()
    return j.retry_backoff, j.retry_mode, j.retry_multiplier, j.backoff_mode


def test_enqueue_and_enqueue_many_store_the_mode_and_multiplier(register):
    register("t.r")
    assert columns(enqueue("t.r", retry_backoff="linear", retry_multiplier=3)) == (
        True, "linear", 3.0, "linear")
    assert columns(enqueue("t.r", retry_backoff=True)) == (True, "exponential", None,
                                                           "exponential")
    assert columns(enqueue("t.r", retry_backoff="fixed")) == (False, "fixed", None, "fixed")
    assert columns(enqueue("t.r")) == (True, "exponential", None, "exponential")  # settings
    many = enqueue_many([{"type": "t.r", "retry_backoff": "linear"},
                         {"type": "t.r", "retry_backoff": "linear"},
                         {"type": "t.r", "retry_multiplier": 1.5}])
    assert [columns(j) for j in many] == [(True, "linear", None, "linear")] * 2 + [
        (True, "exponential", 1.5, "exponential")]


def test_bad_retry_options_raise_before_anything_is_written(register):
    register("t.r")
    with pytest.raises(ValueError, match=r"^enqueue\('t.r'\): retry_backoff must be True, "
                                         r"False, 'fixed', 'linear' or 'exponential', got 'lin'"):
        enqueue("t.r", retry_backoff="lin")
    with pytest.raises(ValueError, match=r"^enqueue_many item 1\('t.r'\): retry_multiplier "
                                         r"must be a number > 0, got 0"):
        enqueue_many([{"type": "t.r"}, {"type": "t.r", "retry_multiplier": 0}])
    with pytest.raises(ValueError, match=r"add_cron\('c'\): retry_backoff must be True"):
        add_cron("c", "* * * * *", "t.r", retry_backoff="sometimes")
    assert not Job.objects.exists() and not CronSchedule.objects.exists()


def test_job_decorator_defaults_and_enqueue_overrides(register):
    from django_edgejobs.registry import get_registry

    @job("t.lin", retry_backoff="linear", retry_multiplier=4)
    def lin(payload, ctx):  # pragma: no cover - never run
        return None

    try:
        assert columns(lin.enqueue({})) == (True, "linear", 4.0, "linear")
        # A mode given without a multiplier is that mode's own default.
        assert columns(lin.enqueue({}, retry_backoff=True)) == (True, "exponential", None,
                                                                "exponential")
        assert columns(lin.enqueue({}, retry_multiplier=2)) == (True, "linear", 2.0, "linear")
        with pytest.raises(ValueError, match=r"@job\('t.bad'\): retry_multiplier has no "
                                             r"effect with retry_backoff=False"):
            job("t.bad", retry_backoff=False, retry_multiplier=2)
    finally:
        get_registry().unregister("t.lin")


def test_edit_job_changes_the_mode_and_resets_or_sets_the_multiplier(register):
    register("t.r")
    j = enqueue("t.r", retry_backoff="exponential", retry_multiplier=3)
    assert edit_job(j.id, retry_backoff="linear") is True
    assert columns(j) == (True, "linear", None, "linear")
    assert edit_job(j.id, retry_multiplier=5) is True
    assert columns(j) == (True, "linear", 5.0, "linear")
    assert edit_job(j.id, retry_backoff=False) is True  # a bool, as always
    assert columns(j) == (False, "fixed", None, "fixed")
    with pytest.raises(ValueError, match=r"edit_job: retry_backoff must be True, False"):
        edit_job(j.id, retry_backoff="never")
    with pytest.raises(ValueError, match=r"edit_job: retry_backoff cannot be None"):
        edit_job(j.id, retry_backoff=None)
    assert columns(j) == (False, "fixed", None, "fixed")


def test_a_schedule_passes_its_mode_and_multiplier_to_its_jobs(handler):
    schedule = add_cron("r", "* * * * *", handler, retry_backoff="linear", retry_multiplier=2)
    assert (schedule.retry_backoff, schedule.retry_mode, schedule.retry_multiplier) == (
        True, "linear", 2.0)
    tick_job = build_cron_job(schedule)
    assert (tick_job.retry_mode, tick_job.retry_multiplier) == ("linear", 2.0)
    # A new mode without a multiplier resets it; a bool stays a bool in the definition.
    edit_cron("r", retry_backoff=True)
    schedule = CronSchedule.objects.get(name="r")
    assert (schedule.retry_backoff, schedule.retry_mode, schedule.retry_multiplier) == (
        True, "", None)
    assert build_cron_job(schedule).backoff_mode == "exponential"
    declared = {"d": {"cron": "0 3 * * *", "type": handler, "retry_backoff": "fixed"}}
    sync_declared(declared)
    assert build_cron_job(CronSchedule.objects.get(name="d")).backoff_mode == "fixed"


def test_the_worker_waits_the_linear_delay(register, settings):
    """Attempt 3 of a linear job with multiplier 10 waits 21 delays times the jitter (10.5 to
    21); the doubling of old would wait 2 to 4."""
    def fail(payload, ctx):
        raise RuntimeError("down")

    register("t.flaky", fail)
    j = enqueue("t.flaky", max_attempts=5, retry_delay=10, retry_delay_max=10_000,
                retry_backoff="linear", retry_multiplier=10)
    Job.objects.filter(id=j.id).update(attempts=2)
    assert run_jobs() == 1
    [event] = [e for e in get_job_events(j.id) if e.type == "retried"]
    assert 105 <= event.data["delay"] <= 210
    j.refresh_from_db()
    assert j.status == "pending" and j.attempts == 3


def test_export_and_the_admin_detail_show_the_mode(register, admin_client):
    from django.urls import reverse

    register("t.r")
    j = enqueue("t.r", retry_backoff="linear", retry_multiplier=2.5, retry_delay=7)
    data = job_dict(j, detail=True)
    assert (data["retry_backoff"], data["retry_mode"], data["retry_multiplier"]) == (
        True, "linear", 2.5)
    legacy = enqueue("t.r")
    Job.objects.filter(id=legacy.id).update(retry_mode=None)  # a row from before 0012
    legacy.refresh_from_db()
    assert job_dict(legacy, detail=True)["retry_mode"] == "exponential"
    assert job_dict(legacy, detail=True)["retry_multiplier"] == 2.0
    html = admin_client.get(reverse("admin:django_edgejobs_job_change", args=[j.pk])).content
    assert "delay 7.0 s, linear backoff \u00d72.5, at most 3600.0 s" in html.decode()
    fixed = enqueue("t.r", retry_backoff=False)
    html = admin_client.get(reverse("admin:django_edgejobs_job_change", args=[fixed.pk])).content
    assert "fixed (no backoff)" in html.decode()


def task_work() -> None:  # pragma: no cover - a django.tasks Task's function, never run
    return None


def test_edge_task_options_take_the_modes(settings):
    from django.tasks import task
    from django.tasks.exceptions import InvalidTask

    settings.TASKS = {"default": {"BACKEND": "django_edgejobs.tasks.EdgeJobsBackend",
                                  "QUEUES": ["default"]}}
    with pytest.raises(InvalidTask, match="retry_backoff must be True, False, 'fixed'"):
        task(retry_backoff="often")(task_work)
    edge = task(retry_backoff="linear", retry_multiplier=3)(task_work)
    assert (edge.retry_backoff, edge.retry_multiplier) == ("linear", 3.0)
    assert edge.using(retry_backoff=True).retry_backoff is True
    options = edge.get_backend()._job_options(edge)
    assert (options["retry_backoff"], options["retry_multiplier"]) == ("linear", 3.0)
