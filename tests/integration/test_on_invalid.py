"""``@job(schema=..., on_invalid=...)`` and ``enqueue(..., on_invalid=...)``: what enqueue does
with a payload the schema refuses: raise (the default), write it straight to ``failed`` with the
validation error (a dead letter), or drop it with a warning."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from typing import Any, TypedDict

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction

from django_edgejobs import (
    InvalidPayload,
    enqueue,
    enqueue_many,
    enqueue_on_commit,
    failure_groups,
    get_job,
    get_job_events,
    job,
    retry_job,
    signals,
)
from django_edgejobs.models import Job
from django_edgejobs.runtime.worker import Worker

pytestmark = pytest.mark.django_db(transaction=True)

MISSING = ("payload does not match Signup: payload['email'] is missing (required by Signup)")


class Signup(TypedDict):
    email: str


def run() -> int:
    return Worker(["default"], worker_id="test-on-invalid").run_once()


@pytest.fixture
def seen() -> list[Any]:
    return []


@pytest.fixture
def signup(register: Callable, seen: list[Any]) -> Callable[..., Any]:
    """Register ``t.signup`` with the Signup schema and the given on_invalid."""
    def add(on_invalid: str = "raise") -> Any:
        return register("t.signup", lambda payload, ctx: seen.append(payload), schema=Signup,
                        on_invalid=on_invalid)
    return add


@pytest.fixture
def sent() -> Iterator[dict[str, list[Any]]]:
    got: dict[str, list[Any]] = {"enqueued": [], "failed": []}

    def on_enqueued(sender: Any, job: Any, **kwargs: Any) -> None:
        got["enqueued"].append(job.id)

    def on_failed(sender: Any, job: Any, error: Any, **kwargs: Any) -> None:
        got["failed"].append((job.id, job.status, error))

    signals.job_enqueued.connect(on_enqueued, dispatch_uid="test-on-invalid-enq")
    signals.job_failed.connect(on_failed, dispatch_uid="test-on-invalid-fail")
    yield got
    signals.job_enqueued.disconnect(dispatch_uid="test-on-invalid-enq")
    signals.job_failed.disconnect(dispatch_uid="test-on-invalid-fail")


def test_raise_is_the_default_and_writes_nothing(signup: Callable) -> None:
    signup()
    with pytest.raises(InvalidPayload, match=r"payload\['email'\] is missing"):
        enqueue("t.signup", {"name": "Ann"})
    assert not Job.objects.exists()


def test_fail_writes_a_dead_letter_with_the_validation_error(
        signup: Callable, sent: dict[str, list[Any]], seen: list[Any]) -> None:
    signup("fail")
    written = enqueue("t.signup", {"mail": "ann@example.com"})
    stored = get_job(written.id)
    error = f"InvalidPayload: enqueue('t.signup'): {MISSING}; payload['mail'] is not a field " \
            "of Signup; did you mean 'email'?"
    assert (written.status, stored.status) == ("failed", "failed")
    assert stored.payload == {"mail": "ann@example.com"}  # kept as given
    assert stored.last_error == error
    assert [(e["attempt"], e["error"]) for e in stored.error_history] == [(0, error)]
    assert stored.attempts == 0
    assert stored.completed_at is not None and stored.started_at is None
    assert [e.type for e in get_job_events(written.id)] == ["added", "failed"]
    assert sent == {"enqueued": [], "failed": [(written.id, "failed", error)]}
    assert run() == 0 and seen == []  # no worker ever runs it
    group, = failure_groups()
    assert (group.count, group.types) == (1, ["t.signup"])


def test_a_retried_dead_letter_fails_again_without_retries(signup: Callable) -> None:
    signup("fail")
    written = enqueue("t.signup", {}, max_attempts=5)
    assert retry_job(written.id)
    assert run() == 1
    stored = get_job(written.id)
    assert (stored.status, stored.attempts) == ("failed", 1)
    assert "does not match Signup" in stored.last_error


def test_fail_inside_a_transaction_that_rolls_back_leaves_nothing(
        signup: Callable, sent: dict[str, list[Any]]) -> None:
    signup("fail")
    with pytest.raises(RuntimeError), transaction.atomic():
        enqueue("t.signup", {})
        raise RuntimeError("rolled back")
    assert not Job.objects.exists()
    assert sent == {"enqueued": [], "failed": []}


def test_discard_writes_nothing_returns_none_and_logs_a_warning(
        signup: Callable, sent: dict[str, list[Any]], caplog: pytest.LogCaptureFixture) -> None:
    handler = signup("discard")
    with caplog.at_level(logging.WARNING, logger="django_edgejobs"):
        assert enqueue("t.signup", {"name": "Ann"}) is None
        assert handler.enqueue({}) is None
        assert handler.delay(name="Ann") is None
        assert enqueue_on_commit("t.signup", {}) is None
    assert not Job.objects.exists()
    assert sent == {"enqueued": [], "failed": []}
    warnings = [r for r in caplog.records if r.name == "django_edgejobs"]
    assert len(warnings) == 4 and all(r.levelno == logging.WARNING for r in warnings)
    assert warnings[0].getMessage() == (
        f"payload discarded (on_invalid='discard'): enqueue('t.signup'): {MISSING}; "
        "payload['name'] is not a field of Signup (fields: email)")
    assert "Ann" not in warnings[2].getMessage()  # the error names keys, not the values


def test_a_valid_payload_is_unaffected(signup: Callable, seen: list[Any]) -> None:
    signup("discard")
    written = enqueue("t.signup", {"email": "ann@example.com"})
    assert written.status == "pending"
    assert run() == 1 and seen == [{"email": "ann@example.com"}]


def test_enqueue_many_keeps_positions_and_writes_the_rest(signup: Callable) -> None:
    signup("fail")
    out = enqueue_many([
        {"type": "t.signup", "payload": {"email": "a@example.com"}},
        {"type": "t.signup", "payload": {}},
        {"type": "t.signup", "payload": {}, "on_invalid": "discard"},
        {"type": "t.signup", "payload": {"email": "b@example.com"}},
    ])
    assert [j.status if j else None for j in out] == ["pending", "failed", None, "pending"]
    assert Job.objects.count() == 3
    assert sorted(Job.objects.values_list("status", flat=True)) == ["failed", "pending",
                                                                    "pending"]


def test_the_per_call_option_overrides_the_handlers(signup: Callable) -> None:
    signup("fail")
    with pytest.raises(InvalidPayload):
        enqueue("t.signup", {}, on_invalid="raise")
    assert not Job.objects.exists()
    signup()  # raise by default
    assert enqueue("t.signup", {}, on_invalid="fail").status == "failed"


def test_an_existing_idempotency_key_keeps_its_job(signup: Callable) -> None:
    signup("fail")
    first = enqueue("t.signup", {"email": "a@example.com"}, idempotency_key="k1")
    again = enqueue("t.signup", {}, idempotency_key="k1")
    assert again.id == first.id and get_job(first.id).status == "pending"
    assert Job.objects.count() == 1


def test_a_payload_json_cannot_hold_still_raises(signup: Callable) -> None:
    signup("fail")
    with pytest.raises(InvalidPayload, match="on_invalid='fail' cannot keep it as a failed job"):
        enqueue("t.signup", {"when": {1, 2}})
    assert not Job.objects.exists()


def test_bad_options_are_refused_before_anything_is_written(
        register: Callable, signup: Callable) -> None:
    with pytest.raises(ImproperlyConfigured, match="on_invalid must be one of 'raise', 'fail', "
                                                   "'discard', got 'drop'"):
        job("t.bad", schema=Signup, on_invalid="drop")(lambda p, c: None)  # type: ignore[arg-type]
    with pytest.raises(ImproperlyConfigured, match="on_invalid='fail' needs a schema"):
        job("t.bad2", on_invalid="fail")(lambda p, c: None)
    signup()
    with pytest.raises(ValueError, match=r"on_invalid must be one of .* got 'later'"):
        enqueue("t.signup", {}, on_invalid="later")
    register("t.plain")
    with pytest.raises(ValueError, match=re.escape(
            "on_invalid='discard' needs a payload schema, and job type 't.plain' has none")):
        enqueue("t.plain", {}, on_invalid="discard")
    assert not Job.objects.exists()
