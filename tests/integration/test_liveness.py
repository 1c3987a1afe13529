"""Connection liveness on a real database (SQLite and PostgreSQL): the rescuer holds back after
losing the database (``Rescuer.run_once`` with a clock of the test's own), the watchdog
interrupts a call that waits too long, the worker's own threads get session timeouts and the
process's connections TCP keepalives."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from django.db import OperationalError, connection, connections
from django.test import override_settings
from django.utils import timezone

from django_edgejobs import enqueue, get_job
from django_edgejobs.models import Worker as WorkerRow
from django_edgejobs.runtime.maintenance import rescuer as rescuer_module
from django_edgejobs.runtime.maintenance.rescuer import Rescuer
from django_edgejobs.runtime.watchdog import Watchdog
from django_edgejobs.runtime.worker import Worker
from django_edgejobs.store import get_store, liveness
from tests.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def silent_worker_with_a_job(register: Any, worker_id: str) -> Any:
    register("t.x", lambda p, c: None)
    job = enqueue("t.x")
    Worker(["default"], worker_id=worker_id).register()
    assert get_store().claim(worker_id, ["default"], 1)
    return job


def silence(worker_id: str, seconds: float = 300) -> None:
    WorkerRow.objects.filter(id=worker_id).update(
        last_heartbeat=timezone.now() - timedelta(seconds=seconds))


class Unreachable:
    """A store whose database cannot be reached."""

    def __getattr__(self, name: str) -> Any:
        def fail(*args: Any, **kwargs: Any) -> Any:
            raise OperationalError("connection refused")

        return fail


def lose_the_database_once(monkeypatch: pytest.MonkeyPatch, rescuer: Rescuer) -> None:
    with monkeypatch.context() as patched:
        patched.setattr(rescuer_module, "get_store", lambda: Unreachable())
        with pytest.raises(OperationalError):
            rescuer.run_once()
    assert rescuer.in_touch_since is None


# -- the rescuer after losing the database ------------------------------------------------


def test_a_rescuer_that_never_failed_reclaims_at_once(register: Any) -> None:
    job = silent_worker_with_a_job(register, "dead")
    silence("dead")
    assert Rescuer(30, clock=Clock()).run_once() == 1
    assert get_job(job.id).status == "pending"


def test_after_a_failed_pass_it_waits_worker_timeout_of_contact_then_reclaims(
        register: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    job = silent_worker_with_a_job(register, "dead")
    clock = Clock()
    rescuer = Rescuer(30, clock=clock)
    lose_the_database_once(monkeypatch, rescuer)
    silence("dead")  # silent for longer than WORKER_TIMEOUT: during the outage, or dead?
    clock.now += 5
    assert rescuer.run_once() == 0  # back in touch: it cannot tell yet
    assert rescuer.in_touch_since == clock.now
    clock.now += 29.9
    assert rescuer.run_once() == 0
    assert get_job(job.id).status == "processing"
    clock.now += 0.1  # in touch for WORKER_TIMEOUT: a live worker would have beaten
    assert rescuer.run_once() == 1
    assert get_job(job.id).status == "pending"


def test_a_live_worker_that_beats_meanwhile_keeps_its_job_and_a_dead_one_does_not(
        register: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    live = silent_worker_with_a_job(register, "live")
    dead = silent_worker_with_a_job(register, "dead")
    clock = Clock()
    rescuer = Rescuer(30, clock=clock)
    lose_the_database_once(monkeypatch, rescuer)
    silence("live")
    silence("dead")
    assert rescuer.run_once() == 0
    assert get_store().heartbeat("live")  # the live worker beats once it can
    clock.now += 30
    assert rescuer.run_once() == 1
    assert (get_job(live.id).status, get_job(dead.id).status) == ("processing", "pending")


def test_each_failure_starts_the_wait_again(register: Any,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    job = silent_worker_with_a_job(register, "dead")
    silence("dead")
    clock = Clock()
    rescuer = Rescuer(30, clock=clock)
    lose_the_database_once(monkeypatch, rescuer)
    assert rescuer.run_once() == 0
    clock.now += 20
    lose_the_database_once(monkeypatch, rescuer)
    clock.now += 20
    assert rescuer.run_once() == 0  # 40 s since the first failure, 0 s in touch
    clock.now += 30
    assert rescuer.run_once() == 1
    assert get_job(job.id).status == "pending"


# -- the watchdog and the session timeouts ------------------------------------------------


@override_settings(EDGEJOBS={"STATEMENT_TIMEOUT": 0})  # only the watchdog ends it
def test_the_watchdog_interrupts_a_call_and_the_thread_goes_on_with_a_new_connection() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("a network connection (SQLite's are not watched)")
    dog = Watchdog(0.3)
    outcome: dict[str, Any] = {}
    ready = threading.Event()

    def thread() -> None:
        dog.watch("test", "default")
        try:
            with connections["default"].cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                outcome["backend"] = cursor.fetchone()[0]
            ready.set()
            started = time.monotonic()
            try:
                with connections["default"].cursor() as cursor:
                    cursor.execute("SELECT pg_sleep(30)")
            except OperationalError as exc:
                outcome["error"] = type(exc).__name__
            outcome["seconds"] = time.monotonic() - started
            connections["default"].close()  # as the worker's loops do after an error
            with connections["default"].cursor() as cursor:
                cursor.execute("SELECT 1")
                outcome["after"] = cursor.fetchone()[0]
        finally:
            dog.forget()
            connections.close_all()

    worker = threading.Thread(target=thread)
    worker.start()
    ready.wait(5)
    interrupted = wait_for(lambda: dog.run_once(), timeout=20, interval=0.05,
                           message="the watchdog interrupted the call")
    worker.join(20)
    with connection.cursor() as cursor:  # the server would notice at pg_sleep's end
        cursor.execute("SELECT pg_terminate_backend(%s)", [outcome["backend"]])
    assert interrupted == ["test"]
    assert outcome["error"] == "OperationalError" and outcome["seconds"] < 10
    assert outcome["after"] == 1
    assert dog.run_once() == [] and dog._watched == []


def show(setting: str) -> str:
    with connections["default"].cursor() as cursor:
        cursor.execute(f"SHOW {setting}")
        return str(cursor.fetchone()[0])


@override_settings(EDGEJOBS={"STATEMENT_TIMEOUT": 7, "LOCK_TIMEOUT": 3})
def test_the_workers_own_threads_get_session_timeouts_and_other_threads_do_not() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL sessions")
    seen: dict[str, tuple[str, ...]] = {}

    def run(name: str, own: bool) -> None:
        dog = Watchdog(0)
        try:
            if own:
                dog.watch(name, "default")
            seen[name] = (show("statement_timeout"), show("lock_timeout"),
                          show("idle_in_transaction_session_timeout"))
            connections["default"].close()  # a new connection gets them too
            seen[name + " again"] = (show("statement_timeout"),)
        finally:
            dog.forget()
            connections.close_all()

    for name, own in (("claim loop", True), ("slot-0", False)):
        thread = threading.Thread(target=run, args=(name, own))
        thread.start()
        thread.join(30)
    assert seen == {"claim loop": ("7s", "3s", "7s"), "claim loop again": ("7s",),
                    "slot-0": ("0", "0", "0"), "slot-0 again": ("0",)}


@override_settings(EDGEJOBS={"DEAD_CONNECTION_TIMEOUT": 9})
def test_keepalives_are_added_under_the_options_databases_sets_and_taken_back() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("libpq options")
    settings_dict = connections["default"].settings_dict
    before = settings_dict.get("OPTIONS")
    settings_dict["OPTIONS"] = {**(before or {}), "keepalives_idle": 42}
    try:
        restore = liveness.add_keepalives(["default", "default"])
        params = connections["default"].get_connection_params()
        assert (params["keepalives"], params["keepalives_idle"], params["tcp_user_timeout"],
                params["connect_timeout"]) == (1, 42, 9000, 9)
        assert show("server_version")  # it connects with them
        info = connections["default"].connection.info.get_parameters()
        assert info.get("keepalives_idle") == "42" and info.get("tcp_user_timeout") == "9000"
        restore()
        assert settings_dict["OPTIONS"] == {**(before or {}), "keepalives_idle": 42}
    finally:
        settings_dict["OPTIONS"] = before
        connections["default"].close()


@pytest.mark.skipif("connection.vendor != 'sqlite'", reason="SQLite has no TCP")
def test_sqlite_connections_are_left_as_they_are() -> None:
    before = dict(connections["default"].settings_dict.get("OPTIONS") or {})
    liveness.add_keepalives(["default"])()
    assert dict(connections["default"].settings_dict.get("OPTIONS") or {}) == before
