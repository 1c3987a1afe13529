"""PostgreSQL without a pooler in between: ``POOLER = "auto"`` finds none (so the hot path is
prepared and the listener LISTENs on the jobs' database), and a declared transaction pooler
turns off what needs a session. Through a real PgBouncer: tests/acceptance/faults/
test_pgbouncer.py."""

from __future__ import annotations

import logging
import threading

import pytest
from django.db import connection
from django.test import override_settings

from django_edgejobs import enqueue, enqueue_many
from django_edgejobs.checks import check_pooler_found
from django_edgejobs.models import Job
from django_edgejobs.runtime.worker import Worker
from django_edgejobs.store import pooler
from django_edgejobs.store.wakeups import Listener
from tests.conftest import wait_for
from tests.integration.test_prepared_statements import fresh_connection, prepared

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL"),
]


@pytest.fixture(autouse=True)
def _found_again():
    pooler.forget()
    yield
    pooler.forget()


def test_a_direct_connection_is_not_taken_for_a_pooler():
    connection.ensure_connection()
    assert pooler.proxied(connection.connection) is False
    assert pooler.behind_transaction_pooler("default", connection.connection) is False
    assert check_pooler_found(databases=["default"]) == []


@override_settings(EDGEJOBS={"POOLER": "transaction"})
def test_behind_a_declared_transaction_pooler_nothing_is_prepared(register):
    register("t.noop", lambda p, c: None)
    fresh_connection()
    enqueue_many([{"type": "t.noop"} for _ in range(5)])
    enqueue("t.noop")
    assert Worker(["default"], worker_id="pooled", batch_size=10).run_once() == 6
    assert prepared() == []
    assert Job.objects.filter(status="completed").count() == 6


def _listener(stop: threading.Event) -> tuple[Listener, threading.Thread]:
    listener = Listener("default", ["default"], lambda: None, stop)
    thread = threading.Thread(target=listener.run, daemon=True)
    thread.start()
    return listener, thread


@override_settings(EDGEJOBS={"POOLER": "transaction"})
def test_behind_a_transaction_pooler_the_listener_warns_once_and_leaves(caplog):
    stop = threading.Event()
    with caplog.at_level(logging.INFO, logger="django_edgejobs"):
        listener, thread = _listener(stop)
        thread.join(10)
    stop.set()
    assert not thread.is_alive() and not listener.connected.is_set()
    lines = [r.getMessage() for r in caplog.records if "wake-ups" in r.getMessage()]
    assert len(lines) == 1 and lines[0].startswith(
        "wake-ups: no LISTEN: database 'default' is behind a transaction pooler "
        "(EDGEJOBS['POOLER'] = 'transaction')"), lines
    assert [r.levelname for r in caplog.records if "wake-ups" in r.getMessage()] == ["WARNING"]


@pytest.mark.parametrize("edgejobs", [{}, {"POOLER": "transaction", "LISTEN_DATABASE": "default"},
                                      {"POOLER": "session"}])
def test_otherwise_the_listener_listens_and_says_where(caplog, edgejobs):
    stop = threading.Event()
    with override_settings(EDGEJOBS=edgejobs), caplog.at_level(logging.INFO,
                                                                logger="django_edgejobs"):
        listener, thread = _listener(stop)
        try:
            assert listener.connected.wait(10)
            wait_for(lambda: any("wake-ups" in r.getMessage() for r in caplog.records))
        finally:
            stop.set()
            thread.join(10)
    assert [(r.levelname, r.getMessage()) for r in caplog.records
            if "wake-ups" in r.getMessage()] == [("INFO", "wake-ups: LISTEN on database 'default'")]
