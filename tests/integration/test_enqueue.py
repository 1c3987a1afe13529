"""enqueue / enqueue_many against a real database (SQLite, or PostgreSQL with DATABASE_URL)."""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_edgejobs import InvalidPayload, UnknownJobType, enqueue, enqueue_many, job
from django_edgejobs import signals as edge_signals
from django_edgejobs.models import Job, JobEvent, JobStatus
from django_edgejobs.registry import get_registry
from tests.conftest import wait_for

pytestmark = pytest.mark.django_db

AWARE = datetime(2031, 3, 4, 5, 6, 7, tzinfo=UTC)
NAIVE = datetime(2031, 3, 4, 5, 6, 7)
#: Due times may come from the database's clock (SQLite's has millisecond resolution).
SLACK = timedelta(seconds=1)


def send_email(payload: dict, ctx: Any) -> dict:
    return {"sent": True}


@pytest.fixture
def email(register: Callable) -> Any:
    return register("t.email", send_email)


@pytest.fixture
def enqueued() -> Iterator[list]:
    """Jobs announced by the ``job_enqueued`` signal, in order."""
    got: list = []

    def receiver(sender: type, job: Job, **kwargs: Any) -> None:
        assert sender is Job
        got.append(job)

    edge_signals.job_enqueued.connect(receiver, weak=False)
    yield got
    edge_signals.job_enqueued.disconnect(receiver)


def counts() -> tuple[int, int]:
    return Job.objects.count(), JobEvent.objects.count()


# -- the returned job ---------------------------------------------------------------------


@override_settings(EDGEJOBS={})
def test_enqueue_returns_the_saved_job_with_every_default(email: Any) -> None:
    before = timezone.now()
    got = enqueue("t.email", {"to": "a@example.com"})
    after = timezone.now()

    assert isinstance(got, Job)
    assert got._state.adding is False
    row = Job.objects.get(id=got.id)
    for j in (got, row):
        assert (j.type, j.queue, j.payload, j.status, j.priority, j.attempts) == (
            "t.email", "default", {"to": "a@example.com"}, JobStatus.PENDING, 0, 0)
        assert (j.max_attempts, j.retry_delay, j.retry_backoff, j.retry_delay_max,
                j.timeout) == (3, 60.0, True, 3600.0, None)
        assert (j.tags, j.idempotency_key, j.progress, j.result, j.last_error,
                j.error_history) == ([], None, None, None, "", [])
        assert (j.started_at, j.completed_at, j.lease_owner, j.lease_token) == (
            None, None, "", None)
        assert before - SLACK <= j.run_at <= after + SLACK
        assert before <= j.created_at <= after
    assert row.run_at == got.run_at
    assert counts() == (1, 1)


def test_a_job_built_without_init_equals_one_built_by_django(email: Any) -> None:
    """enqueue builds the Job without ``Model.__init__`` when nothing listens to its signals;
    with a ``post_init`` receiver it takes Django's path, and both give the same instance."""
    from django.db.models.signals import post_init

    def fields(job: Job) -> dict[str, Any]:
        data = {k: v for k, v in vars(job).items() if k != "_state"}
        data.pop("id"), data.pop("created_at"), data.pop("updated_at"), data.pop("run_at")
        return data

    fast = enqueue("t.email", {"to": "a@example.com"}, tags=["x"])
    seen: list[Job] = []

    def receiver(sender: Any, instance: Job, **kwargs: Any) -> None:
        seen.append(instance)

    post_init.connect(receiver, sender=Job)
    try:
        slow = enqueue("t.email", {"to": "a@example.com"}, tags=["x"])
    finally:
        post_init.disconnect(receiver, sender=Job)
    assert seen and seen[0] is slow  # the receiver saw the job enqueue built
    assert fields(fast) == fields(slow)
    assert (fast._state.adding, fast._state.db) == (slow._state.adding, slow._state.db)
    assert isinstance(fast.id, type(slow.id)) and fast.id != slow.id


def test_a_missing_payload_is_an_empty_object(email: Any) -> None:
    assert Job.objects.get(id=enqueue("t.email").id).payload == {}
    assert Job.objects.get(id=enqueue("t.email", None).id).payload == {}


@pytest.mark.parametrize("payload", [[1, "two", None], "text", 12, {"nested": {"a": [1.5, True]}}])
def test_any_json_payload_round_trips(email: Any, payload: Any) -> None:
    assert Job.objects.get(id=enqueue("t.email", payload).id).payload == payload


def test_tuples_in_the_payload_are_stored_as_lists(email: Any) -> None:
    got = enqueue("t.email", {"pair": (1, 2)})
    assert got.payload == {"pair": [1, 2]}
    assert Job.objects.get(id=got.id).payload == {"pair": [1, 2]}


def test_unicode_and_quotes_survive(email: Any) -> None:
    payload = {"name": "Zoë \"Z\" O'Neil", "日本": "東京", "emoji": "✉️"}
    got = enqueue("t.email", payload, tags=["it's", "café"])
    row = Job.objects.get(id=got.id)
    assert row.payload == payload
    assert row.tags == ["it's", "café"]


def test_the_job_can_be_reloaded_and_saved_without_a_second_row(email: Any) -> None:
    got = enqueue("t.email", {"n": 1})
    got.refresh_from_db()
    got.priority = 3
    got.save(update_fields=["priority"])
    assert Job.objects.get().priority == 3


# -- options ------------------------------------------------------------------------------


@override_settings(EDGEJOBS={"DEFAULT_MAX_ATTEMPTS": 9, "DEFAULT_RETRY_DELAY": 7,
                             "DEFAULT_RETRY_BACKOFF": False, "DEFAULT_RETRY_DELAY_MAX": 70})
def test_settings_supply_what_neither_call_nor_handler_set(email: Any) -> None:
    got = Job.objects.get(id=enqueue("t.email").id)
    assert (got.queue, got.priority, got.max_attempts, got.retry_delay, got.retry_backoff,
            got.retry_delay_max, got.timeout) == ("default", 0, 9, 7.0, False, 70.0, None)


@override_settings(EDGEJOBS={"DEFAULT_MAX_ATTEMPTS": 9, "DEFAULT_RETRY_DELAY": 7,
                             "DEFAULT_RETRY_BACKOFF": True, "DEFAULT_RETRY_DELAY_MAX": 70})
def test_handler_options_beat_settings(register: Callable) -> None:
    register("t.opts", send_email, queue="emails", priority=5, max_attempts=4, retry_delay=2.0,
             retry_backoff=False, retry_delay_max=20.0, timeout=30.0)
    got = Job.objects.get(id=enqueue("t.opts").id)
    assert (got.queue, got.priority, got.max_attempts, got.retry_delay, got.retry_backoff,
            got.retry_delay_max, got.timeout) == ("emails", 5, 4, 2.0, False, 20.0, 30.0)


def test_call_options_beat_handler_options_even_when_falsy(register: Callable) -> None:
    register("t.opts", send_email, queue="emails", priority=5, max_attempts=4, retry_delay=2.0,
             retry_backoff=True, retry_delay_max=20.0, timeout=30.0)
    got = enqueue("t.opts", queue="other", priority=0, max_attempts=1, retry_delay=0,
                  retry_backoff=False, retry_delay_max=0, timeout=0.5)
    row = Job.objects.get(id=got.id)
    assert (row.queue, row.priority, row.max_attempts, row.retry_delay, row.retry_backoff,
            row.retry_delay_max, row.timeout) == ("other", 0, 1, 0.0, False, 0.0, 0.5)


@pytest.mark.parametrize(("options", "expected"), [({"max_retries": 4}, 5),
                                                   ({"max_retries": 0}, 1),
                                                   ({"max_attempts": 2}, 2)])
def test_max_retries_is_max_attempts_minus_one(email: Any, options: dict, expected: int) -> None:
    assert Job.objects.get(id=enqueue("t.email", **options).id).max_attempts == expected


def test_max_retries_beats_the_handler_default(register: Callable) -> None:
    register("t.five", send_email, max_attempts=5)
    assert enqueue("t.five", max_retries=1).max_attempts == 2
    assert enqueue("t.five").max_attempts == 5


@pytest.mark.parametrize("delay", [60, 60.0, timedelta(minutes=1)])
def test_delay_sets_run_at_from_now(email: Any, delay: Any) -> None:
    before = timezone.now()
    got = enqueue("t.email", delay=delay)
    after = timezone.now()
    row = Job.objects.get(id=got.id)
    minute = timedelta(seconds=60)
    assert before + minute - SLACK <= row.run_at <= after + minute + SLACK


def test_run_at_is_kept_exactly_in_any_zone(email: Any) -> None:
    from zoneinfo import ZoneInfo

    local = datetime(2031, 7, 1, 9, 30, tzinfo=ZoneInfo("America/New_York"))
    row = Job.objects.get(id=enqueue("t.email", run_at=local).id)
    assert row.run_at == local
    assert row.run_at == datetime(2031, 7, 1, 13, 30, tzinfo=UTC)


def test_a_past_run_at_is_accepted(email: Any) -> None:
    past = timezone.now() - timedelta(days=2)
    assert Job.objects.get(id=enqueue("t.email", run_at=past).id).run_at == past


def test_a_delay_counts_from_the_database_clock(email: Any,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from django_edgejobs.store import get_store

    real_now = timezone.now
    # This host's clock runs an hour ahead of the database's: a job due now must still run now.
    monkeypatch.setattr(timezone, "now", lambda: real_now() + timedelta(hours=1))
    got = enqueue("t.email", delay=0)
    monkeypatch.undo()
    assert [j.id for j in get_store().claim("test-worker", ["default"], 10)] == [got.id]


def test_tags_are_stored_without_duplicates_in_order(email: Any) -> None:
    got = enqueue("t.email", tags=("welcome", "user:123", "welcome"))
    assert Job.objects.get(id=got.id).tags == ["welcome", "user:123"]


# -- validation: nothing is written -------------------------------------------------------

BAD_INPUT = [
    pytest.param("t.nope", {}, {}, UnknownJobType,
                 r"no handler is registered for job type 't\.nope'", id="unknown-type"),
    pytest.param("t.emial", {}, {}, UnknownJobType, r"did you mean 't\.email'\?", id="typo"),
    pytest.param("t.email", {"items": [1, {2}]}, {}, InvalidPayload,
                 r"\('t\.email'\): payload\['items'\]\[1\] is a set, which is not "
                 r"JSON-serialisable", id="payload-set"),
    pytest.param("t.email", {1: "x"}, {}, InvalidPayload,
                 r"payload has a key 1 of type int; JSON object keys must be strings",
                 id="payload-int-key"),
    pytest.param("t.email", {"note": "a\x00b"}, {}, InvalidPayload,
                 r"payload\['note'\] contains a NUL character", id="payload-nul"),
    pytest.param("t.email", {"big": "x" * 100}, {}, InvalidPayload,
                 r"payload is 110 bytes as JSON, over MAX_PAYLOAD_BYTES \(64\)", id="too-big"),
    pytest.param("t.email", {}, {"run_at": NAIVE}, ValueError,
                 r"run_at must be timezone-aware, got naive 2031-03-04T05:06:07", id="naive"),
    pytest.param("t.email", {}, {"delay": -1}, ValueError, r"delay must be >= 0, got -1$",
                 id="negative-delay"),
    pytest.param("t.email", {}, {"delay": timedelta(seconds=-5)}, ValueError,
                 r"delay must be >= 0, got -5\.0$", id="negative-timedelta"),
    pytest.param("t.email", {}, {"delay": 5, "run_at": AWARE}, ValueError,
                 r"pass delay or run_at, not both$", id="delay-and-run_at"),
    pytest.param("t.email", {}, {"max_attempts": 3, "max_retries": 2}, ValueError,
                 r"pass max_attempts or max_retries, not both$", id="attempts-and-retries"),
    pytest.param("t.email", {}, {"max_attempts": 0}, ValueError,
                 r"max_attempts must be >= 1, got 0$", id="zero-attempts"),
    pytest.param("t.email", {}, {"max_attempts": 2**31}, ValueError,
                 r"max_attempts must be <= 2147483647, got 2147483648$", id="huge-attempts"),
    pytest.param("t.email", {}, {"max_retries": -1}, ValueError,
                 r"max_retries must be >= 0, got -1$", id="negative-retries"),
    pytest.param("t.email", {}, {"tags": ["ok", 7]}, ValueError,
                 r"tags must be strings, got 7 \(int\)$", id="int-tag"),
    pytest.param("t.email", {}, {"tags": "welcome"}, ValueError,
                 r"tags must be a list of strings, got str$", id="str-tags"),
    pytest.param("t.email", {}, {"tags": ["a\x00"]}, ValueError,
                 r"a tag cannot contain a NUL character", id="nul-tag"),
    pytest.param("t.email", {}, {"priority": "high"}, ValueError,
                 r"priority must be an integer, got 'high'$", id="priority"),
    pytest.param("t.email", {}, {"priority": 2**31}, ValueError,
                 r"priority must fit in 32 bits", id="huge-priority"),
    pytest.param("t.email", {}, {"queue": ""}, ValueError,
                 r"queue must be a non-empty string, got ''$", id="queue"),
    pytest.param("t.email", {}, {"timeout": 0}, ValueError, r"timeout must be > 0, got 0$",
                 id="timeout"),
    pytest.param("t.email", {}, {"retry_backoff": "yes"}, ValueError,
                 r"retry_backoff must be True, False, 'fixed', 'linear' or 'exponential', "
                 r"got 'yes'$", id="backoff"),
    pytest.param("t.email", {}, {"idempotency_key": ""}, ValueError,
                 r"idempotency_key must be a non-empty string, got ''$", id="key"),
    pytest.param("t.email", {}, {"idempotency_key": "k" * 256}, ValueError,
                 r"idempotency_key is longer than 255 characters$", id="long-key"),
]


@override_settings(EDGEJOBS={"MAX_PAYLOAD_BYTES": 64})
@pytest.mark.parametrize(("type_", "payload", "options", "exc", "message"), BAD_INPUT)
def test_enqueue_rejects_bad_input_before_writing(email: Any, enqueued: list, type_: str,
                                                  payload: Any, options: dict,
                                                  exc: type[Exception], message: str) -> None:
    with pytest.raises(exc, match=r"^enqueue.*" + message):
        enqueue(type_, payload, **options)
    assert counts() == (0, 0)
    assert enqueued == []


@override_settings(EDGEJOBS={"MAX_PAYLOAD_BYTES": 64})
@pytest.mark.parametrize(("type_", "payload", "options", "exc", "message"), BAD_INPUT)
def test_enqueue_many_is_all_or_nothing(email: Any, enqueued: list, type_: str, payload: Any,
                                        options: dict, exc: type[Exception],
                                        message: str) -> None:
    items = [{"type": "t.email", "payload": {"n": 0}},
             {"type": type_, "payload": payload, **options},
             {"type": "t.email", "payload": {"n": 2}}]
    with pytest.raises(exc, match=r"^enqueue_many item 1.*" + message):
        enqueue_many(items)
    assert counts() == (0, 0)
    assert enqueued == []


def test_a_bad_item_rejects_the_whole_batch_even_with_earlier_keys(email: Any) -> None:
    items = [{"type": "t.email", "idempotency_key": "k1"},
             {"type": "t.email", "delay": -1}]
    with pytest.raises(ValueError, match=r"^enqueue_many item 1\('t\.email'\): delay must be"):
        enqueue_many(items)
    assert counts() == (0, 0)
    # The key is free afterwards: nothing was reserved.
    assert enqueue("t.email", idempotency_key="k1").idempotency_key == "k1"


def test_unknown_options_are_rejected(email: Any) -> None:
    with pytest.raises(TypeError, match=r"^enqueue: unexpected option\(s\) colour, sound$"):
        enqueue("t.email", {}, colour="red", sound="on")
    with pytest.raises(ValueError, match=r"^enqueue_many: item 0 has unknown key\(s\) colour$"):
        enqueue_many([{"type": "t.email", "colour": "red"}])
    assert counts() == (0, 0)


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ([["t.email"]], r"^enqueue_many: item 0 must be a dict, got list$"),
        ([{"type": "t.email"}, "t.email"], r"^enqueue_many: item 1 must be a dict, got str$"),
        ([{"type": "t.email"}, {"payload": {}}], r"^enqueue_many: item 1 has no 'type'$"),
    ],
)
def test_enqueue_many_checks_the_shape_of_items(email: Any, items: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        enqueue_many(items)
    assert counts() == (0, 0)


def test_a_type_too_long_for_its_column_is_rejected(register: Callable) -> None:
    name = "t." + "x" * 199
    register(name, send_email)
    with pytest.raises(ValueError, match=r"job type is longer than 200 characters$"):
        enqueue(name)
    assert counts() == (0, 0)


# -- enqueue_many -------------------------------------------------------------------------


def test_enqueue_many_returns_jobs_in_input_order(register: Callable) -> None:
    register("t.a", send_email)
    register("t.b", send_email, queue="bees")
    items = [{"type": "t.b" if n % 3 == 0 else "t.a", "payload": {"n": n}, "priority": 10 - n}
             for n in range(10)]
    got = enqueue_many(items)
    assert [j.payload["n"] for j in got] == list(range(10))
    assert [j.type for j in got] == [i["type"] for i in items]
    assert [j.priority for j in got] == [10 - n for n in range(10)]
    assert [j.queue for j in got] == ["bees" if n % 3 == 0 else "default" for n in range(10)]
    assert len({j.id for j in got}) == 10
    assert all(not j._state.adding for j in got)
    rows = Job.objects.in_bulk([j.id for j in got])
    assert [rows[j.id].payload for j in got] == [{"n": n} for n in range(10)]
    assert counts() == (10, 10)


def test_enqueue_many_takes_every_option_per_item(register: Callable) -> None:
    register("t.a", send_email)
    got = enqueue_many([
        {"type": "t.a", "payload": {"n": 1}, "delay": 30, "queue": "q1", "max_retries": 2,
         "retry_delay": 5, "retry_backoff": False, "retry_delay_max": 50, "timeout": 9,
         "tags": ["x"], "idempotency_key": "k-1"},
        {"type": "t.a", "run_at": AWARE, "max_attempts": 7},
    ])
    first, second = (Job.objects.get(id=j.id) for j in got)
    assert (first.queue, first.max_attempts, first.retry_delay, first.retry_backoff,
            first.retry_delay_max, first.timeout, first.tags, first.idempotency_key) == (
        "q1", 3, 5.0, False, 50.0, 9.0, ["x"], "k-1")
    assert first.run_at > timezone.now() + timedelta(seconds=25)
    assert (second.run_at, second.max_attempts, second.payload) == (AWARE, 7, {})


def stored(job: Job) -> dict[str, Any]:
    """Every concrete field of a job, as read back from its row."""
    row = Job.objects.get(id=job.id)
    return {f.attname: getattr(row, f.attname) for f in Job._meta.concrete_fields}


def test_enqueue_many_stores_what_it_returns_whichever_columns_items_share(
        register: Callable) -> None:
    """Items that share options (the usual bulk load) and items that differ in some columns,
    NULLs included: every row holds what the returned job says. (PostgreSQL sends a column
    the items share as one value and the others as arrays.)"""
    register("t.a", send_email)
    register("t.b", send_email, queue="bees", timeout=3)
    same = [{"type": "t.a", "payload": {"n": n}, "delay": 60, "tags": ["x", "y"]}
            for n in range(3)]
    mixed = [
        {"type": "t.a"},
        {"type": "t.b", "payload": [1, "two"], "expires": 120, "priority": -5},
        {"type": "t.a", "payload": {"n": None}, "run_at": AWARE, "expires": AWARE + SLACK,
         "idempotency_key": "k-mixed", "max_retries": 0},
        {"type": "t.b", "delay": 5, "retry_backoff": False, "tags": ["z"]},
    ]
    for items in (same, mixed, same[:1], same + mixed):
        got = enqueue_many(items)
        for one in got:
            row = stored(one)
            assert row == {f.attname: getattr(one, f.attname)
                           for f in Job._meta.concrete_fields}
        Job.objects.all().delete()
    # The shared delay counted on the database's clock for each job of the call.
    got = enqueue_many(same)
    assert {j.run_at for j in got} == {stored(got[0])["run_at"]}
    assert [j.tags for j in got] == [["x", "y"]] * 3


def test_jobs_of_one_enqueue_many_share_no_mutable_value(email: Any) -> None:
    got = enqueue_many([{"type": "t.email", "tags": ["a"]} for _ in range(3)])
    got[0].tags.append("changed")
    got[0].payload["changed"] = True
    got[0].steps["changed"] = True
    got[0].error_history.append("changed")
    for other in got[1:]:
        assert (other.tags, other.payload, other.steps, other.error_history) == (
            ["a"], {}, {}, [])
    assert len({j.id for j in got}) == 3


@pytest.mark.parametrize(
    ("first", "second", "message"),
    [
        ({"priority": 1}, {"priority": True}, r"priority must be an integer, got True"),
        ({"priority": 1}, {"priority": 1.0}, r"priority must be an integer, got 1\.0"),
        ({"delay": 5}, {"delay": float("nan")}, r"delay must be a number of seconds"),
        ({"idempotency_key": "k"}, {"idempotency_key": ""}, r"idempotency_key must be"),
        ({"idempotency_key": "k"}, {"idempotency_key": 7}, r"idempotency_key must be"),
        ({"payload": {}}, {"payload": {"x": float("inf")}}, r"payload\['x'\] is inf"),
        ({"tags": ("a",)}, {"tags": ("a", 1)}, r"tags must be strings"),
    ],
)
def test_items_with_equal_options_are_still_checked_one_by_one(
        email: Any, first: dict, second: dict, message: str) -> None:
    """enqueue_many validates the options it has seen once per call; a value equal in Python
    but not valid (``True == 1``) is still refused, naming its item."""
    items = [{"type": "t.email", **first}, {"type": "t.email", **second}]
    with pytest.raises((ValueError, InvalidPayload), match=r"^enqueue_many item 1.*" + message):
        enqueue_many(items)
    assert counts() == (0, 0)


def test_enqueue_many_of_nothing_writes_nothing(email: Any) -> None:
    assert enqueue_many([]) == []
    assert enqueue_many(iter(())) == []
    assert counts() == (0, 0)


def test_enqueue_many_accepts_any_iterable(email: Any) -> None:
    got = enqueue_many({"type": "t.email", "payload": {"n": n}} for n in range(3))
    assert [j.payload for j in got] == [{"n": 0}, {"n": 1}, {"n": 2}]


def test_every_new_job_gets_one_added_event(email: Any) -> None:
    one = enqueue("t.email")
    many = enqueue_many([{"type": "t.email"}, {"type": "t.email"}])
    for j in (one, *many):
        events = list(JobEvent.objects.filter(job_id=j.id))
        assert [(e.type, e.data) for e in events] == [("added", {})]
        assert events[0].created_at is not None
    assert counts() == (3, 3)


# -- idempotency keys ---------------------------------------------------------------------


def test_a_repeated_key_returns_the_existing_job(email: Any, enqueued: list,
                                                 django_capture_on_commit_callbacks) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        first = enqueue("t.email", {"v": 1}, idempotency_key="welcome-123")
        again = enqueue("t.email", {"v": 2}, idempotency_key="welcome-123", priority=9)
    assert again.id == first.id
    assert again.payload == {"v": 1}
    assert again.priority == 0
    assert counts() == (1, 1)
    assert [j.id for j in enqueued] == [first.id]


@pytest.mark.parametrize("status", JobStatus.values)
def test_an_existing_key_of_any_status_wins(email: Any, status: str) -> None:
    first = enqueue("t.email", {"v": 1}, idempotency_key="k")
    Job.objects.filter(id=first.id).update(status=status)
    again = enqueue("t.email", {"v": 2}, idempotency_key="k")
    assert (again.id, again.status, again.payload) == (first.id, status, {"v": 1})
    many = enqueue_many([{"type": "t.email", "idempotency_key": "k"}])
    assert [(j.id, j.status) for j in many] == [(first.id, status)]
    assert counts() == (1, 1)


def test_keys_repeated_inside_one_enqueue_many(email: Any, enqueued: list,
                                               django_capture_on_commit_callbacks) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        got = enqueue_many([
            {"type": "t.email", "payload": {"n": 0}, "idempotency_key": "k1"},
            {"type": "t.email", "payload": {"n": 1}, "idempotency_key": "k2"},
            {"type": "t.email", "payload": {"n": 2}, "idempotency_key": "k1"},
            {"type": "t.email", "payload": {"n": 3}},
            {"type": "t.email", "payload": {"n": 4}, "idempotency_key": "k2"},
        ])
    assert [j.payload["n"] for j in got] == [0, 1, 0, 3, 1]
    assert got[2].id == got[0].id
    assert got[4].id == got[1].id
    assert counts() == (3, 3)
    assert set(Job.objects.values_list("idempotency_key", flat=True)) == {"k1", "k2", None}
    assert sorted(j.payload["n"] for j in enqueued) == [0, 1, 3]


def test_enqueue_many_mixes_existing_keys_and_new_jobs(email: Any, enqueued: list,
                                                       django_capture_on_commit_callbacks) -> None:
    old = enqueue("t.email", {"n": "old"}, idempotency_key="k1")
    with django_capture_on_commit_callbacks(execute=True):
        got = enqueue_many([
            {"type": "t.email", "payload": {"n": 0}},
            {"type": "t.email", "payload": {"n": 1}, "idempotency_key": "k1"},
            {"type": "t.email", "payload": {"n": 2}, "idempotency_key": "k9"},
        ])
    assert [j.payload["n"] for j in got] == [0, "old", 2]
    assert got[1].id == old.id
    assert counts() == (3, 3)
    assert sorted(j.payload["n"] for j in enqueued) == [0, 2]


@pytest.mark.django_db(transaction=True)
def test_a_key_taken_by_a_concurrent_transaction_returns_that_job(email: Any,
                                                                  vendor: str) -> None:
    """Two connections, one key: the second waits for the first and returns its job."""
    inserted, release = threading.Event(), threading.Event()
    results: dict[str, Any] = {}

    def in_thread(name: str, fn: Callable[[], Any]) -> threading.Thread:
        def run() -> None:
            try:
                results[name] = fn()
            except BaseException as exc:  # reported by the assertions below
                results[name] = exc
            finally:
                connection.close()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread

    def holder() -> Job:
        with transaction.atomic():
            got = enqueue("t.email", {"by": "a"}, idempotency_key="race")
            inserted.set()
            assert release.wait(20)
        return got

    first = in_thread("a", holder)
    assert inserted.wait(20)
    second = in_thread("b", lambda: enqueue("t.email", {"by": "b"}, idempotency_key="race"))
    if vendor == "postgresql":
        def blocked() -> int:
            with connection.cursor() as cursor:
                cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = "
                               "current_database() AND wait_event_type = 'Lock'")
                return cursor.fetchone()[0]

        wait_for(blocked, timeout=20, message="the second insert to wait on the first")
    release.set()
    first.join(20)
    second.join(40)
    assert isinstance(results["a"], Job), results["a"]
    assert isinstance(results["b"], Job), results["b"]
    assert results["b"].id == results["a"].id
    assert results["b"].payload == {"by": "a"}
    assert counts() == (1, 1)


def test_the_database_enforces_one_job_per_key(email: Any) -> None:
    from django.db import IntegrityError

    enqueue("t.email", idempotency_key="k")
    with pytest.raises(IntegrityError), transaction.atomic():
        Job.objects.create(type="t.email", idempotency_key="k")
    # Jobs without a key are not limited.
    enqueue("t.email")
    enqueue("t.email")
    assert Job.objects.filter(idempotency_key__isnull=True).count() == 2


# -- the caller's transaction and the job_enqueued signal ---------------------------------


def test_a_rolled_back_savepoint_leaves_nothing(email: Any) -> None:
    with pytest.raises(RuntimeError), transaction.atomic():
        enqueue("t.email", idempotency_key="k")
        enqueue_many([{"type": "t.email"}, {"type": "t.email"}])
        assert counts() == (3, 3)
        raise RuntimeError("boom")
    assert counts() == (0, 0)


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_transaction_leaves_nothing_and_sends_nothing(email: Any,
                                                                    enqueued: list) -> None:
    with pytest.raises(RuntimeError), transaction.atomic():
        enqueue("t.email")
        enqueue("t.email", idempotency_key="k")
        enqueue_many([{"type": "t.email"}, {"type": "t.email", "idempotency_key": "k2"}])
        raise RuntimeError("boom")
    assert counts() == (0, 0)
    assert enqueued == []


@pytest.mark.django_db(transaction=True)
def test_job_enqueued_is_sent_after_commit_only(email: Any, enqueued: list) -> None:
    with transaction.atomic():
        one = enqueue("t.email", {"n": 1})
        many = enqueue_many([{"type": "t.email", "payload": {"n": 2}},
                             {"type": "t.email", "payload": {"n": 3}}])
        assert enqueued == []
    assert [j.id for j in enqueued] == [one.id, many[0].id, many[1].id]
    # In autocommit mode the write is its own transaction: sent at once.
    alone = enqueue("t.email", {"n": 4})
    assert enqueued[-1].id == alone.id
    assert len(enqueued) == 4


def test_job_enqueued_waits_for_the_outer_commit(email: Any, enqueued: list,
                                                 django_capture_on_commit_callbacks) -> None:
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        got = enqueue("t.email")
        assert enqueued == []
    assert len(callbacks) == 1
    assert [j.id for j in enqueued] == [got.id]
    assert enqueued[0] is got


# -- the decorator ------------------------------------------------------------------------


def test_the_decorated_handler_enqueues_and_stays_callable(register: Callable) -> None:
    @job("t.decorated", queue="emails", max_attempts=5)
    def notify(payload: dict, ctx: Any) -> dict:
        """Notify someone."""
        return {"echo": payload}

    got = notify.enqueue({"to": "b@example.com"}, priority=3, tags=["x"])
    row = Job.objects.get(id=got.id)
    assert (row.type, row.queue, row.max_attempts, row.priority, row.payload, row.tags) == (
        "t.decorated", "emails", 5, 3, {"to": "b@example.com"}, ["x"])
    assert notify.enqueue().payload == {}
    assert notify({"a": 1}, None) == {"echo": {"a": 1}}
    assert notify.__name__ == "notify"
    assert notify.__doc__ == "Notify someone."


def test_a_second_registration_of_a_type_raises(register: Callable) -> None:
    @job("t.twice")
    def first(payload: dict, ctx: Any) -> str:
        return "first"

    with pytest.raises(ImproperlyConfigured,
                       match=r"^job type 't\.twice' is already registered by .*\.first; "
                             r".*\.second cannot register it again$"):
        @job("t.twice")
        def second(payload: dict, ctx: Any) -> str:
            return "second"

    assert get_registry().require("t.twice").func({}, None) == "first"
    assert first.enqueue().type == "t.twice"


# -- round trips --------------------------------------------------------------------------


def statements(ctx: CaptureQueriesContext) -> list[str]:
    """The SQL statements run, without transaction control (a statement run for many rows,
    ``executemany``, is logged once as "N times: ...")."""
    skip = ("SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO SAVEPOINT", "BEGIN")
    sql = [re.sub(r"^\d+ times: ", "", q["sql"]) for q in ctx.captured_queries]
    return [s for s in sql if not s.upper().startswith(skip)]


@pytest.mark.parametrize("size", [1, 3, 40])
def test_enqueue_many_is_one_statement_on_postgresql(email: Any, vendor: str,
                                                     size: int) -> None:
    if vendor != "postgresql":
        pytest.skip("PostgreSQL only")
    with CaptureQueriesContext(connection) as ctx:
        enqueue_many([{"type": "t.email", "payload": {"n": n}} for n in range(size)])
    assert len(ctx.captured_queries) == 1, [q["sql"][:80] for q in ctx.captured_queries]
    sql = ctx.captured_queries[0]["sql"]
    assert sql.startswith('WITH j AS (INSERT INTO "django_edgejobs_job"')
    assert "pg_notify" in sql
    assert counts() == (size, size)


@pytest.mark.parametrize("size", [1, 3, 40])
def test_enqueue_many_is_a_fixed_number_of_statements_on_sqlite(email: Any, vendor: str,
                                                                size: int) -> None:
    if vendor != "sqlite":
        pytest.skip("SQLite only")
    with CaptureQueriesContext(connection) as ctx:
        enqueue_many([{"type": "t.email", "payload": {"n": n}} for n in range(size)])
    sql = statements(ctx)
    assert len(sql) == 2, sql
    assert sql[0].startswith('INSERT INTO "django_edgejobs_job"')
    assert sql[1].startswith('INSERT INTO "django_edgejobs_jobevent"')
    assert counts() == (size, size)


def test_enqueue_many_with_keys_does_not_grow_with_the_batch(email: Any, vendor: str) -> None:
    used = []
    for size in (2, 30):
        items = [{"type": "t.email", "idempotency_key": f"{size}-{n}"} for n in range(size)]
        with CaptureQueriesContext(connection) as ctx:
            enqueue_many(items)
        used.append(len(statements(ctx)))
    assert used[0] == used[1]
    assert used[0] <= 4, used


def test_enqueue_many_with_new_keys_is_one_statement_on_postgresql(email: Any,
                                                                   vendor: str) -> None:
    if vendor != "postgresql":
        pytest.skip("PostgreSQL only")
    items = [{"type": "t.email", "idempotency_key": f"k-{n}"} for n in range(5)]
    with CaptureQueriesContext(connection) as ctx:
        enqueue_many(items)
    assert counts() == (5, 5)
    assert len(ctx.captured_queries) == 1, [q["sql"][:60] for q in ctx.captured_queries]


# -- NOTIFY on PostgreSQL -----------------------------------------------------------------


@contextlib.contextmanager
def pg_listener() -> Iterator[Any]:
    """A separate psycopg connection that LISTENs on the channel workers use."""
    import psycopg

    params = connection.get_connection_params()
    for key in ("cursor_factory", "context", "prepare_threshold", "server_side_binding"):
        params.pop(key, None)
    conn = psycopg.connect(**params, autocommit=True)
    try:
        conn.execute('LISTEN "django_edgejobs"')
        yield conn
    finally:
        conn.close()


def notices(conn: Any, timeout: float) -> list[tuple[str, str]]:
    """Notifications that arrive within ``timeout`` seconds, as (channel, payload)."""
    return [(n.channel, n.payload) for n in conn.notifies(timeout=timeout)]


@pytest.fixture
def postgres_only(vendor: str) -> None:
    if vendor != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL only; SQLite relies on polling")


@pytest.mark.django_db(transaction=True)
def test_notify_arrives_only_after_commit(postgres_only: None, register: Callable) -> None:
    register("t.mail", send_email, queue="emails")
    with pg_listener() as conn:
        with transaction.atomic():
            enqueue("t.mail", {"n": 1})
            assert notices(conn, timeout=0.3) == []
        got = wait_for(lambda: notices(conn, timeout=0.1), timeout=5,
                       message="a notification after commit")
        assert got == [("django_edgejobs", "emails")]


@pytest.mark.django_db(transaction=True)
def test_enqueue_many_notifies_each_queue_once(postgres_only: None,
                                               register: Callable) -> None:
    register("t.a", send_email, queue="alpha")
    register("t.b", send_email, queue="beta")
    with pg_listener() as conn:
        with transaction.atomic():
            enqueue_many([{"type": "t.a"}, {"type": "t.b"}, {"type": "t.a"},
                          {"type": "t.a", "queue": "gamma", "idempotency_key": "k"}])
            assert notices(conn, timeout=0.3) == []
        got: list = []
        wait_for(lambda: got.extend(notices(conn, timeout=0.1)) or len(got) >= 3, timeout=5,
                 message="three notifications")
        got.extend(notices(conn, timeout=0.2))
        assert sorted(got) == [("django_edgejobs", "alpha"), ("django_edgejobs", "beta"),
                               ("django_edgejobs", "gamma")]


@pytest.mark.django_db(transaction=True)
def test_notify_is_sent_in_autocommit_mode(postgres_only: None, email: Any) -> None:
    with pg_listener() as conn:
        enqueue("t.email")
        got = wait_for(lambda: notices(conn, timeout=0.1), timeout=5, message="a notification")
        assert got == [("django_edgejobs", "default")]


@pytest.mark.django_db(transaction=True)
def test_no_notify_after_a_rollback_or_for_an_existing_key(postgres_only: None,
                                                           email: Any) -> None:
    enqueue("t.email", idempotency_key="k")
    with pg_listener() as conn:
        with pytest.raises(RuntimeError), transaction.atomic():
            enqueue("t.email")
            raise RuntimeError("boom")
        enqueue("t.email", idempotency_key="k")
        enqueue_many([{"type": "t.email", "idempotency_key": "k"}])
        assert notices(conn, timeout=0.5) == []
    assert counts() == (1, 1)
