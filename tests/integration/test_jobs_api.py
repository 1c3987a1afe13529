"""Reading and managing jobs: get_job, list_jobs, get_jobs_by_tags, cancel_job,
cancel_all_upcoming, retry_job, edit_job, get_job_events (SQLite and PostgreSQL)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import transaction
from django.dispatch import Signal
from django.utils import timezone

from django_edgejobs import (
    InvalidPayload,
    cancel_all_upcoming,
    cancel_job,
    edit_job,
    enqueue,
    enqueue_many,
    get_job,
    get_job_events,
    get_jobs_by_tags,
    list_jobs,
    retry_job,
)
from django_edgejobs import signals as edge_signals
from django_edgejobs.models import Job, JobEvent, JobStatus
from django_edgejobs.store import get_store
from tests.conftest import wait_for
from tests.integration.test_enqueue import notices, pg_listener

pytestmark = pytest.mark.django_db

T0 = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)
OTHER_STATUSES = {
    "cancel": [JobStatus.PROCESSING, JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED],
    "retry": [JobStatus.PENDING, JobStatus.WAITING, JobStatus.PROCESSING, JobStatus.COMPLETED],
    "edit": [JobStatus.WAITING, JobStatus.PROCESSING, JobStatus.COMPLETED, JobStatus.FAILED,
             JobStatus.CANCELLED],
}


@pytest.fixture(autouse=True)
def handlers(register: Callable) -> None:
    register("t.a", lambda payload, ctx: None)
    register("t.b", lambda payload, ctx: None, queue="bees")


@pytest.fixture
def catch() -> Iterator[Callable[[Signal], list[dict]]]:
    """``catch(signal)`` -> the list of keyword arguments of every send, in order."""
    connected: list[tuple[Signal, Callable]] = []

    def start(signal: Signal) -> list[dict]:
        got: list[dict] = []

        def receiver(sender: type, **kwargs: Any) -> None:
            kwargs.pop("signal")
            got.append({"sender": sender, **kwargs})

        signal.connect(receiver, weak=False)
        connected.append((signal, receiver))
        return got

    yield start
    for signal, receiver in connected:
        signal.disconnect(receiver)


def make(status: str = JobStatus.PENDING, type_: str = "t.a", **fields: Any) -> Job:
    """A job in ``status`` (set directly, as a worker would have), with extra field values."""
    job = enqueue(type_, fields.pop("payload", {}), tags=fields.pop("tags", None),
                  queue=fields.pop("queue", None))
    if status != JobStatus.PENDING or fields:
        Job.objects.filter(id=job.id).update(status=status, **fields)
    return Job.objects.get(id=job.id)


def events(job: Job) -> list[tuple[str, dict]]:
    return [(e.type, e.data) for e in JobEvent.objects.filter(job_id=job.id).order_by("id")]


def snapshot(job: Job) -> dict:
    return Job.objects.filter(id=job.id).values().get()


# -- get_job ------------------------------------------------------------------------------


def test_get_job_accepts_a_uuid_or_its_string() -> None:
    job = make()
    for key in (job.id, str(job.id), str(job.id).upper(), job.id.hex, f"{{{job.id}}}"):
        found = get_job(key)
        assert isinstance(found, Job)
        assert found.id == job.id


@pytest.mark.parametrize("key", [uuid.UUID(int=0), str(uuid.uuid4()), "nope", "", None, 42,
                                 b"\x00" * 16, " " + str(uuid.UUID(int=1))])
def test_get_job_returns_none_for_unknown_or_garbage(key: Any) -> None:
    make()
    assert get_job(key) is None


# -- list_jobs ----------------------------------------------------------------------------


def test_list_jobs_is_newest_first() -> None:
    middle, newest, oldest = make(), make(), make()
    Job.objects.filter(id=oldest.id).update(created_at=T0)
    Job.objects.filter(id=middle.id).update(created_at=T0 + timedelta(seconds=1))
    Job.objects.filter(id=newest.id).update(created_at=T0 + timedelta(minutes=1))
    assert [j.id for j in list_jobs()] == [newest.id, middle.id, oldest.id]


def test_list_jobs_filters_combine() -> None:
    a_pending = make(tags=["x"])
    a_failed = make(JobStatus.FAILED, tags=["x", "y"])
    b_pending = make(type_="t.b", tags=["y"])
    a_other_queue = make(queue="other")
    ids = lambda jobs: {j.id for j in jobs}  # noqa: E731
    assert ids(list_jobs(type="t.a")) == {a_pending.id, a_failed.id, a_other_queue.id}
    assert ids(list_jobs(status="pending")) == {a_pending.id, b_pending.id, a_other_queue.id}
    assert ids(list_jobs(status=JobStatus.FAILED)) == {a_failed.id}
    assert ids(list_jobs(status=["failed", "pending"], type="t.a", queue="default")) == {
        a_pending.id, a_failed.id}
    assert ids(list_jobs(queue="bees")) == {b_pending.id}
    assert ids(list_jobs(tags=["x"])) == {a_pending.id, a_failed.id}
    assert ids(list_jobs(tags=["x", "y"], tag_mode="exact")) == {a_failed.id}
    assert ids(list_jobs(tags=["y"], tag_mode="none")) == {a_pending.id, a_other_queue.id}
    assert ids(list_jobs(type="t.b", tags=["x"])) == set()
    assert list_jobs(type="t.none") == []


def test_list_jobs_limit() -> None:
    enqueue_many([{"type": "t.a", "payload": {"n": n}} for n in range(55)])
    assert len(list_jobs()) == 50
    assert len(list_jobs(limit=None)) == 55
    assert len(list_jobs(limit=7)) == 7
    assert list_jobs(limit=0) == []
    assert len(list_jobs(limit=500)) == 55


@pytest.mark.parametrize("limit", [-1, True, "5", 2.0])
def test_list_jobs_rejects_a_bad_limit(limit: Any) -> None:
    with pytest.raises(ValueError, match=r"^limit must be a non-negative integer or None, got "):
        list_jobs(limit=limit)


def test_list_jobs_rejects_an_unknown_status() -> None:
    with pytest.raises(ValueError, match=r"^unknown status 'done'; one of pending, waiting, "
                                         r"processing, completed, failed, cancelled$"):
        list_jobs(status="done")
    with pytest.raises(ValueError, match=r"^unknown status 'nope'"):
        list_jobs(status=["pending", "nope"])


def test_list_jobs_rejects_an_unknown_tag_mode() -> None:
    with pytest.raises(ValueError, match=r"^tag mode must be one of exact, all, any, none, "
                                         r"got 'some'$"):
        list_jobs(tags=["a"], tag_mode="some")
    # Even without tags: a misspelt mode is a bug in the caller, not "no filter".
    with pytest.raises(ValueError, match=r"^tag mode must be one of .*, got 'ALL'$"):
        list_jobs(tag_mode="ALL")


# -- get_jobs_by_tags ---------------------------------------------------------------------

TAGGED = {
    "A": ["a"],
    "AB": ["a", "b"],
    "B": ["b"],
    "C": ["c"],
    "E": [],
    "Q": ["it's", 'say "hi"'],
    "U": ["café", "日本"],
    "P": ["100%", "a_b", "x\\y", "[1]"],
}
EVERY = set(TAGGED)


@pytest.fixture
def tagged() -> dict[str, Job]:
    return {name: make(tags=tags, payload={"name": name}) for name, tags in TAGGED.items()}


TAG_CASES = [
    ("exact", ["a"], {"A"}),
    ("exact", ["a", "b"], {"AB"}),
    ("exact", ["b", "a"], {"AB"}),
    ("exact", ["a", "a"], {"A"}),
    ("exact", ["a", "b", "c"], set()),
    ("all", ["a"], {"A", "AB"}),
    ("all", ["b", "a"], {"AB"}),
    ("all", ["a", "zzz"], set()),
    ("all", [], EVERY),
    ("any", ["a", "c"], {"A", "AB", "C"}),
    ("any", ["zzz"], set()),
    ("any", [], set()),
    ("none", ["a"], EVERY - {"A", "AB"}),
    ("none", ["a", "c", "café"], EVERY - {"A", "AB", "C", "U"}),
    ("none", [], EVERY),
    # quotes, unicode and characters that mean something to LIKE, JSON or SQL
    ("any", ["it's"], {"Q"}),
    ("all", ['say "hi"'], {"Q"}),
    ("exact", ['say "hi"', "it's"], {"Q"}),
    ("any", ["café"], {"U"}),
    ("exact", ["日本", "café"], {"U"}),
    ("any", ["cafe"], set()),
    ("any", ["CAFÉ"], set()),
    ("any", ["100%"], {"P"}),
    ("any", ["100"], set()),
    ("any", ["a_b"], {"P"}),
    ("any", ["axb"], set()),
    ("all", ["x\\y", "[1]"], {"P"}),
    ("any", ["it"], set()),
    ("any", ['["a"]'], set()),
    ("any", ["') OR 1=1 --"], set()),
    ("none", ["') OR 1=1 --"], EVERY),
]


@pytest.mark.parametrize(("mode", "tags", "expected"), TAG_CASES)
def test_get_jobs_by_tags(tagged: dict[str, Job], mode: str, tags: list[str],
                          expected: set[str]) -> None:
    found = get_jobs_by_tags(tags, mode=mode)
    assert {j.payload["name"] for j in found} == expected
    assert len(found) == len(expected)


def test_exact_with_no_tags_finds_untagged_jobs(tagged: dict[str, Job]) -> None:
    assert {j.payload["name"] for j in get_jobs_by_tags([], mode="exact")} == {"E"}


@pytest.mark.parametrize(("mode", "expected"), [("all", EVERY), ("any", set()),
                                                ("none", EVERY)])
def test_get_jobs_by_tags_none_means_no_tags(tagged: dict[str, Job], mode: str,
                                             expected: set[str]) -> None:
    assert {j.payload["name"] for j in get_jobs_by_tags(None, mode=mode)} == expected


def test_get_jobs_by_tags_defaults_to_all_newest_first(tagged: dict[str, Job]) -> None:
    Job.objects.filter(id=tagged["A"].id).update(created_at=T0 + timedelta(hours=1))
    Job.objects.filter(id=tagged["AB"].id).update(created_at=T0)
    assert [j.payload["name"] for j in get_jobs_by_tags(["a"])] == ["A", "AB"]
    assert [j.payload["name"] for j in get_jobs_by_tags(["a"], limit=1)] == ["A"]


def test_get_jobs_by_tags_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match=r"^tag mode must be one of exact, all, any, none, "
                                         r"got 'ANY'$"):
        get_jobs_by_tags(["a"], mode="ANY")
    with pytest.raises(ValueError, match=r"tags must be a list of strings, got str$"):
        get_jobs_by_tags("a")
    with pytest.raises(ValueError, match=r"tags must be strings, got 1 \(int\)$"):
        get_jobs_by_tags(["a", 1], mode="any")


def test_many_tags_at_once(tagged: dict[str, Job]) -> None:
    many = [f"t{n}" for n in range(300)]
    make(tags=many, payload={"name": "M"})
    assert {j.payload["name"] for j in get_jobs_by_tags(many, mode="exact")} == {"M"}
    assert {j.payload["name"] for j in get_jobs_by_tags(["a", *many], mode="any")} == {
        "A", "AB", "M"}


# -- cancel_job ---------------------------------------------------------------------------


@pytest.mark.parametrize("status", [JobStatus.PENDING, JobStatus.WAITING])
def test_cancel_job_cancels_pending_and_waiting(status: str, catch: Callable,
                                                django_capture_on_commit_callbacks) -> None:
    cancelled = catch(edge_signals.job_cancelled)
    job = make(status)
    before = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        assert cancel_job(str(job.id)) is True
        assert cancelled == []
    row = Job.objects.get(id=job.id)
    assert row.status == JobStatus.CANCELLED
    assert row.completed_at is not None
    assert before - timedelta(seconds=5) <= row.completed_at <= timezone.now() + timedelta(
        seconds=5)
    assert events(job) == [("added", {}), ("cancelled", {})]
    assert len(cancelled) == 1
    assert cancelled[0]["sender"] is Job
    assert cancelled[0]["job"].id == job.id
    assert cancelled[0]["job"].status == JobStatus.CANCELLED


@pytest.mark.parametrize("status", OTHER_STATUSES["cancel"])
def test_cancel_job_leaves_other_states_alone(status: str, catch: Callable,
                                              django_capture_on_commit_callbacks) -> None:
    cancelled = catch(edge_signals.job_cancelled)
    job = make(status)
    before = snapshot(job)
    with django_capture_on_commit_callbacks(execute=True):
        assert cancel_job(job.id) is False
    assert snapshot(job) == before
    assert events(job) == [("added", {})]
    assert cancelled == []


@pytest.mark.parametrize("key", [uuid.uuid4(), "garbage", None])
def test_cancel_job_of_an_unknown_job_is_false(key: Any) -> None:
    make()
    assert cancel_job(key) is False
    assert JobEvent.objects.filter(type="cancelled").count() == 0


# -- cancel_all_upcoming ------------------------------------------------------------------


def test_cancel_all_upcoming_with_filters(catch: Callable,
                                          django_capture_on_commit_callbacks) -> None:
    cancelled = catch(edge_signals.job_cancelled)
    a1 = make(tags=["x", "y"])
    a2 = make(JobStatus.WAITING, tags=["x"])
    a3 = make(queue="other", tags=["x"])
    b1 = make(type_="t.b", tags=["x"])
    running = make(JobStatus.PROCESSING, tags=["x"])
    done = make(JobStatus.COMPLETED, tags=["x"])
    untouched = {j.id: snapshot(j) for j in (running, done)}

    with django_capture_on_commit_callbacks(execute=True):
        assert cancel_all_upcoming(type="t.a", queue="default", tags=["x"]) == 2
    assert {j.id for j in list_jobs(status="cancelled")} == {a1.id, a2.id}
    assert {j["job"].id for j in cancelled} == {a1.id, a2.id}
    assert events(a1)[-1] == ("cancelled", {})

    assert cancel_all_upcoming(tags=["y", "zzz"], tag_mode="any") == 0  # a1 is already done
    assert cancel_all_upcoming(queue="bees") == 1
    assert Job.objects.get(id=b1.id).status == JobStatus.CANCELLED
    assert cancel_all_upcoming(type="t.a", tags=["x"], tag_mode="exact") == 1
    assert Job.objects.get(id=a3.id).status == JobStatus.CANCELLED
    assert {j.id: snapshot(j) for j in (running, done)} == untouched
    assert JobEvent.objects.filter(type="cancelled").count() == 4


def test_cancel_all_upcoming_without_filters_cancels_every_pending_or_waiting_job() -> None:
    jobs = [make(status) for status in JobStatus.values]
    assert cancel_all_upcoming() == 2
    assert [Job.objects.get(id=j.id).status for j in jobs] == [
        "cancelled", "cancelled", "processing", "completed", "failed", "cancelled"]
    assert cancel_all_upcoming() == 0


def test_cancel_all_upcoming_handles_big_batches() -> None:
    enqueue_many([{"type": "t.a"} for _ in range(1203)])
    make(JobStatus.PROCESSING)
    assert cancel_all_upcoming(type="t.a") == 1203
    assert Job.objects.filter(status="cancelled").count() == 1203
    assert JobEvent.objects.filter(type="cancelled").count() == 1203


def test_cancel_all_upcoming_rejects_a_bad_tag_mode_before_changing_anything() -> None:
    job = make(tags=["x"])
    with pytest.raises(ValueError, match=r"^tag mode must be one of"):
        cancel_all_upcoming(tags=["x"], tag_mode="every")
    with pytest.raises(ValueError, match=r"^tag mode must be one of"):
        cancel_all_upcoming(tag_mode="every")
    assert Job.objects.get(id=job.id).status == JobStatus.PENDING


# -- retry_job ----------------------------------------------------------------------------


@pytest.mark.parametrize("status", [JobStatus.FAILED, JobStatus.CANCELLED])
def test_retry_job_puts_the_job_back_due_now_with_a_fresh_budget(
        status: str, catch: Callable, django_capture_on_commit_callbacks) -> None:
    retried = catch(edge_signals.job_retried)
    job = make(status, attempts=3, run_at=timezone.now() + timedelta(days=1),
               completed_at=timezone.now(), progress=40, last_error="boom",
               error_history=[{"attempt": 3, "error": "boom"}])
    before = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        assert retry_job(job.id) is True
        assert retried == []
    row = Job.objects.get(id=job.id)
    assert (row.status, row.attempts, row.completed_at, row.progress) == (
        JobStatus.PENDING, 0, None, None)
    assert before - timedelta(seconds=5) <= row.run_at <= timezone.now()
    assert row.max_attempts == job.max_attempts
    assert events(job)[-1] == ("retried", {"by": "retry_job"})
    assert [(r["sender"], r["job"].id, r["error"], r["delay"]) for r in retried] == [
        (Job, job.id, None, 0)]


def test_a_retried_job_can_be_claimed_at_once() -> None:
    job = make(JobStatus.FAILED, attempts=3, run_at=timezone.now() + timedelta(days=1))
    assert retry_job(str(job.id)) is True
    claimed = get_store().claim("test-worker", ["default"], 10)
    assert [(j.id, j.attempts) for j in claimed] == [(job.id, 1)]


@pytest.mark.parametrize("status", OTHER_STATUSES["retry"])
def test_retry_job_leaves_other_states_alone(status: str, catch: Callable,
                                             django_capture_on_commit_callbacks) -> None:
    retried = catch(edge_signals.job_retried)
    job = make(status, attempts=1)
    before = snapshot(job)
    with django_capture_on_commit_callbacks(execute=True):
        assert retry_job(job.id) is False
    assert snapshot(job) == before
    assert events(job) == [("added", {})]
    assert retried == []


@pytest.mark.parametrize("key", [uuid.uuid4(), "garbage", 7])
def test_retry_job_of_an_unknown_job_is_false(key: Any) -> None:
    make(JobStatus.FAILED)
    assert retry_job(key) is False


# -- edit_job -----------------------------------------------------------------------------


def test_edit_job_changes_a_pending_job() -> None:
    job = make(payload={"v": 1}, tags=["old"])
    run_at = T0 + timedelta(days=400)
    assert edit_job(job.id, payload={"v": 2}, priority=7, run_at=run_at, max_attempts=9,
                    tags=["new", "new", "x"], retry_delay=5, retry_backoff=False,
                    retry_delay_max=50, timeout=12, queue="other") is True
    row = Job.objects.get(id=job.id)
    assert (row.payload, row.priority, row.run_at, row.max_attempts, row.tags, row.retry_delay,
            row.retry_backoff, row.retry_delay_max, row.timeout, row.queue, row.status) == (
        {"v": 2}, 7, run_at, 9, ["new", "x"], 5.0, False, 50.0, 12.0, "other", "pending")
    assert events(job)[-1] == ("edited", {"fields": [
        "max_attempts", "payload", "priority", "queue", "retry_backoff", "retry_delay",
        "retry_delay_max", "retry_mode", "retry_multiplier", "run_at", "tags", "timeout"]})


def test_edit_job_delay_and_max_retries() -> None:
    job = make()
    before = timezone.now()
    assert edit_job(str(job.id), delay=timedelta(hours=1), max_retries=0) is True
    row = Job.objects.get(id=job.id)
    # The delay counts from the database's clock (SQLite's has millisecond resolution).
    slack = timedelta(seconds=1)
    assert before + timedelta(hours=1) - slack <= row.run_at
    assert row.run_at <= timezone.now() + timedelta(hours=1) + slack
    assert row.max_attempts == 1
    assert events(job)[-1] == ("edited", {"fields": ["max_attempts", "run_at"]})


@pytest.mark.parametrize("changes", [{"delay": 0}, {"run_at": None}])
def test_edit_job_delay_counts_from_the_database_clock(monkeypatch: pytest.MonkeyPatch,
                                                       changes: dict) -> None:
    job = make(run_at=T0 + timedelta(days=400))
    real_now = timezone.now
    # This host's clock runs an hour ahead of the database's.
    monkeypatch.setattr(timezone, "now", lambda: real_now() + timedelta(hours=1))
    assert edit_job(job.id, **changes) is True
    monkeypatch.undo()
    claimed = get_store().claim("test-worker", ["default"], 10)
    assert [j.id for j in claimed] == [job.id]


def test_edit_job_run_at_is_kept_exactly() -> None:
    job = make()
    assert edit_job(job.id, run_at=T0) is True
    assert Job.objects.get(id=job.id).run_at == T0


def test_edit_job_can_clear_the_timeout_and_only_touches_what_it_is_given() -> None:
    job = make(timeout=30.0, priority=4)
    assert edit_job(job.id, timeout=None) is True
    row = Job.objects.get(id=job.id)
    assert (row.timeout, row.priority) == (None, 4)
    assert events(job)[-1] == ("edited", {"fields": ["timeout"]})


def test_edit_job_payload_none_is_an_empty_payload() -> None:
    job = make(payload={"v": 1})
    assert edit_job(job.id, payload=None) is True
    assert Job.objects.get(id=job.id).payload == {}


@pytest.mark.parametrize("status", OTHER_STATUSES["edit"])
def test_edit_job_only_edits_pending_jobs(status: str) -> None:
    job = make(status)
    before = snapshot(job)
    assert edit_job(job.id, priority=5, payload={"x": 1}) is False
    assert snapshot(job) == before
    assert events(job) == [("added", {})]


@pytest.mark.parametrize("key", [uuid.uuid4(), "garbage", None])
def test_edit_job_of_an_unknown_job_is_false(key: Any) -> None:
    make()
    assert edit_job(key, priority=1) is False
    assert JobEvent.objects.filter(type="edited").count() == 0


def test_edit_job_without_changes_is_false_and_writes_nothing() -> None:
    job = make()
    assert edit_job(job.id) is False
    assert events(job) == [("added", {})]


@pytest.mark.parametrize(
    ("changes", "exc", "message"),
    [
        ({"status": "completed"}, ValueError, r"^edit_job: cannot edit status; editable: "
                                              r"delay, max_attempts, max_retries, payload, "
                                              r"priority, queue, retry_backoff, retry_delay, "
                                              r"retry_delay_max, retry_multiplier, run_at, tags, "
                                              r"timeout$"),
        ({"attempts": 0, "type": "t.b"}, ValueError, r"^edit_job: cannot edit attempts, type;"),
        ({"payload": {"s": {1}}}, InvalidPayload, r"^edit_job: payload\['s'\] is a set"),
        ({"payload": {"s": "x" * 100}}, InvalidPayload,
         r"^edit_job: payload is 108 bytes as JSON, over MAX_PAYLOAD_BYTES \(64\)$"),
        ({"run_at": datetime(2031, 1, 1)}, ValueError,
         r"^edit_job: run_at must be timezone-aware"),
        ({"delay": -5}, ValueError, r"^edit_job: delay must be >= 0, got -5$"),
        ({"delay": 5, "run_at": T0}, ValueError, r"^edit_job: pass delay or run_at, not both$"),
        ({"max_attempts": 0}, ValueError, r"^edit_job: max_attempts must be >= 1, got 0$"),
        ({"max_attempts": 2, "max_retries": 1}, ValueError,
         r"^edit_job: pass max_attempts or max_retries, not both$"),
        ({"max_attempts": None}, ValueError, r"^edit_job: max_attempts cannot be None$"),
        ({"tags": [1]}, ValueError, r"^edit_job: tags must be strings, got 1 \(int\)$"),
        ({"tags": "x"}, ValueError, r"^edit_job: tags must be a list of strings, got str$"),
        ({"priority": None}, ValueError, r"^edit_job: priority cannot be None$"),
        ({"priority": 1.5}, ValueError, r"^edit_job: priority must be an integer, got 1.5$"),
        ({"queue": None}, ValueError, r"^edit_job: queue cannot be None$"),
        ({"retry_backoff": None}, ValueError, r"^edit_job: retry_backoff cannot be None$"),
        ({"timeout": -1}, ValueError, r"^edit_job: timeout must be > 0, got -1$"),
        # A valid change beside a bad one is not applied either.
        ({"priority": 3, "tags": [None]}, ValueError, r"^edit_job: tags must be strings"),
    ],
)
def test_edit_job_rejects_bad_changes_before_writing(settings: Any, changes: dict,
                                                     exc: type[Exception], message: str) -> None:
    job = make(payload={"v": 1})
    before = snapshot(job)
    settings.EDGEJOBS = {"MAX_PAYLOAD_BYTES": 64}
    with pytest.raises(exc, match=message):
        edit_job(job.id, **changes)
    assert snapshot(job) == before
    assert events(job) == [("added", {})]


# -- get_job_events -----------------------------------------------------------------------


def test_get_job_events_is_the_history_oldest_first() -> None:
    job = make()
    other = make()
    assert edit_job(job.id, priority=2) is True
    assert cancel_job(job.id) is True
    assert retry_job(job.id) is True
    assert cancel_all_upcoming(type="t.a") == 2
    found = get_job_events(str(job.id))
    assert [e.type for e in found] == ["added", "edited", "cancelled", "retried", "cancelled"]
    assert all(isinstance(e, JobEvent) and e.job_id == job.id for e in found)
    assert [e.data for e in found] == [{}, {"fields": ["priority"]}, {}, {"by": "retry_job"},
                                       {}]
    stamps = [e.created_at for e in found]
    assert stamps == sorted(stamps)
    assert get_job_events(job.id) == found
    assert [e.type for e in get_job_events(other.id)] == ["added", "cancelled"]


@pytest.mark.parametrize("key", [uuid.uuid4(), "garbage", None])
def test_get_job_events_of_an_unknown_job_is_empty(key: Any) -> None:
    make()
    assert get_job_events(key) == []



# -- waking workers on PostgreSQL ---------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_retry_job_and_edit_job_wake_the_workers_of_the_queue(vendor: str) -> None:
    if vendor != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL only")
    failed = make(JobStatus.FAILED, queue="emails")
    later = make(run_at=T0 + timedelta(days=400), queue="reports")
    other = make()
    with pg_listener() as conn:
        with transaction.atomic():
            assert retry_job(failed.id) is True
            assert notices(conn, timeout=0.3) == []
        assert wait_for(lambda: notices(conn, timeout=0.1), timeout=5,
                        message="a notification") == [("django_edgejobs", "emails")]
        assert edit_job(later.id, delay=0) is True
        assert wait_for(lambda: notices(conn, timeout=0.1), timeout=5,
                        message="a notification") == [("django_edgejobs", "reports")]
        # Changes that cannot make a job due wake nobody.
        assert edit_job(other.id, priority=3) is True
        assert cancel_job(other.id) is True
        assert notices(conn, timeout=0.3) == []
