"""Connection liveness without a database: the watchdog's rule (interrupt a call unanswered for
WATCHDOG_TIMEOUT, exit if it is still stuck as long after), the keepalive options, and the
checks of the new settings. Time is a parameter: a fake clock, no sleeps."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.test import override_settings

from django_edgejobs.checks import check_settings
from django_edgejobs.runtime import watchdog as watchdog_module
from django_edgejobs.runtime.watchdog import EXIT_STUCK, Watchdog, _Watched
from django_edgejobs.store.liveness import keepalive_options


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def setup(monkeypatch: pytest.MonkeyPatch) -> tuple[Watchdog, Clock, list, list, _Watched]:
    clock, exits, interrupted = Clock(), [], []
    monkeypatch.setattr(watchdog_module.liveness, "interrupt",
                        lambda conn: interrupted.append(conn) or True)
    dog = Watchdog(2.0, clock=clock, exit=exits.append)
    entry = _Watched("claim loop", conn="the connection")
    dog._watched.append(entry)
    return dog, clock, exits, interrupted, entry


def waiting_since(entry: _Watched, when: float) -> None:
    """As if the thread had sent a statement at ``when`` and waits for its answer."""
    entry.calls += 1
    entry.since = when


def test_a_call_answered_in_time_is_left_alone(setup: Any) -> None:
    dog, clock, exits, interrupted, entry = setup
    assert dog.run_once() == []  # not waiting at all
    waiting_since(entry, clock.now)
    clock.now += 1.9
    assert dog.run_once() == [] and interrupted == [] and exits == []


def test_a_call_unanswered_for_the_timeout_is_interrupted_once(setup: Any) -> None:
    dog, clock, exits, interrupted, entry = setup
    waiting_since(entry, clock.now)
    clock.now += 2.0
    assert dog.run_once() == ["claim loop"]
    assert interrupted == ["the connection"]
    clock.now += 1.0
    assert dog.run_once() == [] and len(interrupted) == 1 and exits == []


def test_a_call_still_stuck_a_timeout_after_its_interruption_exits_the_process(
        setup: Any) -> None:
    dog, clock, exits, _, entry = setup
    waiting_since(entry, clock.now)
    clock.now += 2.0
    dog.run_once()
    clock.now += 2.0
    dog.run_once()
    assert exits == [EXIT_STUCK] == [75]


def test_a_new_call_after_an_interruption_starts_afresh(setup: Any) -> None:
    dog, clock, exits, interrupted, entry = setup
    waiting_since(entry, clock.now)
    clock.now += 2.0
    dog.run_once()  # interrupted: the call failed, the thread retried on a new connection
    waiting_since(entry, clock.now)
    clock.now += 2.0
    assert dog.run_once() == ["claim loop"]
    assert len(interrupted) == 2 and exits == []


def test_a_timed_call_counts_only_while_it_waits() -> None:
    entry = _Watched("completer", conn=None)
    seen = []
    with entry.waiting():
        seen.append(entry.since is not None)
        with entry.waiting():  # a statement inside a timed commit: one call
            pass
    assert seen == [True] and entry.since is None and entry.calls == 1
    assert entry.execute(lambda *a: "rows", "SELECT 1", None, False, {}) == "rows"
    assert entry.around(lambda: "committed")() == "committed" and entry.calls == 3


def test_threads_that_ended_are_forgotten(setup: Any) -> None:
    dog, _, _, _, entry = setup
    done = threading.Thread(target=lambda: None)
    done.start()
    done.join()
    gone = _Watched("scheduler", conn=None)
    gone.thread = done
    dog._watched.append(gone)
    dog.run_once()
    assert dog._watched == [entry]


def test_a_zero_timeout_watches_nothing(setup: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    marked = []
    monkeypatch.setattr(watchdog_module.liveness, "mark_own_thread", marked.append)
    dog = Watchdog(0)
    dog.watch("claim loop", "default")
    assert marked == ["default"] and dog._watched == []


def test_keepalive_options_give_up_within_the_dead_connection_timeout() -> None:
    options = keepalive_options(15)
    assert options == {"keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2,
                       "keepalives_count": 3, "tcp_user_timeout": 15000,
                       "connect_timeout": 15}
    for seconds in (1, 2.5, 7, 15, 30, 600):
        o = keepalive_options(seconds)
        probes_done = o["keepalives_idle"] + o["keepalives_interval"] * o["keepalives_count"]
        assert probes_done <= max(seconds, 4) and o["tcp_user_timeout"] == int(seconds * 1000)
        assert o["connect_timeout"] >= 2  # libpq's least


def problems() -> list[tuple[str, str]]:
    return [(p.id, p.msg) for p in check_settings() if p.id and p.id.startswith("edgejobs.")]


@pytest.mark.parametrize("key", ["STATEMENT_TIMEOUT", "LOCK_TIMEOUT", "DEAD_CONNECTION_TIMEOUT",
                                 "WATCHDOG_TIMEOUT"])
def test_liveness_settings_are_seconds_or_zero(key: str) -> None:
    with override_settings(EDGEJOBS={key: -1}):
        assert problems() == [("edgejobs.E005", f"EDGEJOBS[{key!r}] must be a number >= 0, "
                                                "got -1")]
    with override_settings(EDGEJOBS={key: 0, "STATEMENT_TIMEOUT": 0}):
        assert problems() == []


def test_the_watchdog_must_wait_longer_than_the_server_does() -> None:
    with override_settings(EDGEJOBS={"STATEMENT_TIMEOUT": 20}):
        assert problems() == [(
            "edgejobs.E005",
            "EDGEJOBS['WATCHDOG_TIMEOUT'] must be more than STATEMENT_TIMEOUT (20): the "
            "watchdog would take a statement the server is still running for a dead "
            "connection, got 15.0")]
    with override_settings(EDGEJOBS={"STATEMENT_TIMEOUT": 20, "WATCHDOG_TIMEOUT": 0}):
        assert problems() == []
    with override_settings(EDGEJOBS={"STATEMENT_TIMEOUT": 1, "WATCHDOG_TIMEOUT": 1.5}):
        assert problems() == []
