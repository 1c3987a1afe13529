"""The settings and system checks of a PostgreSQL behind a connection pooler: ``POOLER`` and
``LISTEN_DATABASE`` (E005), wake-ups that cannot work (W004), Django options that need a
session (W005). What a real PgBouncer does is tested in tests/acceptance/faults/
test_pgbouncer.py; the detection on a direct connection in tests/integration/test_pooler.py."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.checks import Tags, Warning, run_checks
from django.test import override_settings

from django_edgejobs.checks import check_settings, pooler_problems
from django_edgejobs.conf import POOLER_MODES, get_settings
from django_edgejobs.store.pooler import behind_transaction_pooler
from django_edgejobs.store.wakeups import Listener

PG = "django.db.backends.postgresql"
SQLITE = "django.db.backends.sqlite3"


def pg(**extra: Any) -> dict[str, Any]:
    return {"ENGINE": PG, "NAME": "app", **extra}


def problems(edgejobs: dict[str, Any], db: dict[str, Any], **kwargs: Any) -> list:
    return [(type(p), p.id) for p in pooler_problems(edgejobs, {"default": db}, "default",
                                                     **kwargs)]


# -- the settings -------------------------------------------------------------------------


def test_the_defaults_find_out_and_listen_on_the_jobs_database() -> None:
    with override_settings(EDGEJOBS={}):
        assert get_settings().POOLER == "auto"
        assert get_settings().LISTEN_DATABASE is None
    assert POOLER_MODES == ("auto", "none", "session", "transaction")


@pytest.mark.parametrize(("edgejobs", "message"), [
    ({"POOLER": "pgbouncer"}, "EDGEJOBS['POOLER'] must be one of 'auto', 'none', 'session', "
                              "'transaction', got 'pgbouncer'"),
    ({"POOLER": None}, "EDGEJOBS['POOLER'] must be one of 'auto', 'none', 'session', "
                       "'transaction', got None"),
    ({"LISTEN_DATABASE": "direct"},
     "EDGEJOBS['LISTEN_DATABASE'] must be None or an alias in DATABASES, got 'direct'"),
    ({"LISTEN_DATABASE": ["default"]},
     "EDGEJOBS['LISTEN_DATABASE'] must be None or an alias in DATABASES, got ['default']"),
    ({"LISTEN_DATABASE": "local"},
     "EDGEJOBS['LISTEN_DATABASE'] must name a PostgreSQL database, got 'local'"),
])
def test_unusable_values_are_e005(edgejobs: dict[str, Any], message: str) -> None:
    databases = {"default": pg(), "local": {"ENGINE": SQLITE, "NAME": "x.sqlite3"}}
    with override_settings(EDGEJOBS=edgejobs, DATABASES=databases):
        found = [(p.id, p.msg) for p in check_settings()]
    assert found == [("edgejobs.E005", message)]


@pytest.mark.parametrize("edgejobs", [{"POOLER": mode} for mode in POOLER_MODES]
                         + [{"LISTEN_DATABASE": "direct"}, {"LISTEN_DATABASE": None}])
def test_usable_values_pass(edgejobs: dict[str, Any]) -> None:
    with override_settings(EDGEJOBS=edgejobs, DATABASES={"default": pg(), "direct": pg()}):
        assert check_settings() == []


# -- W004, W005 ---------------------------------------------------------------------------


def test_transaction_pooling_without_a_listen_database_is_w004() -> None:
    [w004] = pooler_problems({"POOLER": "transaction"},
                             {"default": pg(DISABLE_SERVER_SIDE_CURSORS=True)}, "default")
    assert (type(w004), w004.id) == (Warning, "edgejobs.W004")
    assert w004.msg == (
        "The workers of DATABASES['default'] cannot be woken by notifications: it is behind a "
        "transaction pooler (EDGEJOBS['POOLER'] = 'transaction'), which loses a LISTEN, and "
        "EDGEJOBS['LISTEN_DATABASE'] is not set, so a new job waits for a worker's next poll "
        "(POLL_INTERVAL)")
    assert w004.hint == (
        "Add an alias to DATABASES for the same database without the pooler (with \"TEST\": "
        "{\"MIRROR\": \"default\"}) and name it in EDGEJOBS['LISTEN_DATABASE']; or, if the "
        "pooler pools sessions, set EDGEJOBS['POOLER'] = 'session'.")


def test_a_listen_database_and_the_django_options_for_pooling_pass() -> None:
    assert problems({"POOLER": "transaction", "LISTEN_DATABASE": "direct"},
                    pg(DISABLE_SERVER_SIDE_CURSORS=True)) == []


def test_django_options_that_need_a_session_are_w005() -> None:
    found = pooler_problems({"POOLER": "transaction", "LISTEN_DATABASE": "direct"},
                            {"default": pg(OPTIONS={"prepare_threshold": 5})}, "default")
    assert [(p.id, p.msg.split(":")[0]) for p in found] == [
        ("edgejobs.W005", "DATABASES['default'] is behind a transaction pooler (EDGEJOBS["
                          "'POOLER'] = 'transaction') but sets OPTIONS['prepare_threshold'] = 5"),
        ("edgejobs.W005", "DATABASES['default'] is behind a transaction pooler (EDGEJOBS["
                          "'POOLER'] = 'transaction') without DISABLE_SERVER_SIDE_CURSORS = "
                          "True"),
    ]


def test_a_pooler_found_by_auto_gives_the_same_warnings() -> None:
    found = pooler_problems({}, {"default": pg()}, "default", found=True)
    assert [p.id for p in found] == ["edgejobs.W004", "edgejobs.W005"]
    assert "a pooler answers for it and EDGEJOBS['POOLER'] is 'auto'" in found[0].msg


@pytest.mark.parametrize(("edgejobs", "db"), [
    ({}, pg()),  # auto, nothing found (or not asked: the database check asks)
    ({"POOLER": "none"}, pg()),
    ({"POOLER": "session"}, pg(OPTIONS={"prepare_threshold": 5})),
    ({"POOLER": "transaction"}, {"ENGINE": SQLITE, "NAME": "x.sqlite3"}),
])
def test_nothing_to_say_without_transaction_pooling_on_postgresql(edgejobs: dict[str, Any],
                                                                  db: dict[str, Any]) -> None:
    assert problems(edgejobs, db) == []


def test_the_registered_check_runs_with_django_checks() -> None:
    with override_settings(EDGEJOBS={"POOLER": "transaction"}, DATABASES={"default": pg()}):
        ids = [m.id for m in run_checks(tags=[Tags.compatibility])
               if m.id in ("edgejobs.W004", "edgejobs.W005")]
    assert ids == ["edgejobs.W004", "edgejobs.W005"]


# -- what the store and the listener decide -------------------------------------------------


@pytest.mark.parametrize(("mode", "pooled"), [("transaction", True), ("session", False),
                                              ("none", False)])
def test_a_declared_pooler_is_taken_at_its_word(mode: str, pooled: bool) -> None:
    with override_settings(EDGEJOBS={"POOLER": mode}):
        assert behind_transaction_pooler("default", raw=None) is pooled  # nothing is asked


def test_the_listener_uses_the_listen_database_when_set() -> None:
    import threading

    listener = Listener("default", ["default"], lambda: None, threading.Event())
    with override_settings(EDGEJOBS={}):
        assert listener.listen_alias == "default"
    with override_settings(EDGEJOBS={"LISTEN_DATABASE": "direct"}):
        assert listener.listen_alias == "direct"
