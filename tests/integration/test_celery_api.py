"""The Celery-style calling API (``.delay``, ``.apply_async``) and job expiry (``expires``)."""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypedDict

import pytest
from django.db.models.functions import Now
from django.utils import timezone

from django_edgejobs import InvalidPayload, enqueue, enqueue_many, get_job, retry_job
from django_edgejobs import signals as edge_signals
from django_edgejobs.models import Job, JobEvent
from django_edgejobs.runtime.supervisor import Supervisor, cancel_expired_jobs
from django_edgejobs.runtime.worker import Worker
from django_edgejobs.store.base import Store

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
SLACK = timedelta(seconds=2)
WHEN = datetime(2031, 1, 2, 3, 4, 5, tzinfo=UTC)


class Email(TypedDict):
    to: str


@pytest.fixture
def ran() -> list[Any]:
    return []


@pytest.fixture
def send(register: Callable, ran: list[Any]) -> Any:
    return register("t.send", lambda payload, ctx: ran.append(payload), queue="emails",
                    priority=2)


def run(queues: tuple[str, ...] = ("emails",)) -> int:
    return Worker(list(queues), worker_id="test-celery").run_once()


def kinds(job: Job) -> list[str]:
    return list(JobEvent.objects.filter(job_id=job.id).order_by("id")
                .values_list("type", flat=True))


# -- delay ----------------------------------------------------------------------------------


def test_delay_enqueues_the_keyword_arguments_as_the_payload(send: Any, ran: list[Any]) -> None:
    got = send.delay(to="a@example.com", n=1)
    assert isinstance(got, Job)
    row = Job.objects.get(id=got.id)
    assert (row.type, row.payload, row.queue, row.priority) == (
        "t.send", {"to": "a@example.com", "n": 1}, "emails", 2)
    assert run() == 1
    assert ran == [{"to": "a@example.com", "n": 1}]


def test_delay_without_arguments_is_an_empty_payload(send: Any) -> None:
    assert Job.objects.get(id=send.delay().id).payload == {}


def test_delay_accepts_payload_keys_named_like_its_parameters(send: Any) -> None:
    assert Job.objects.get(id=send.delay(self=1, args=2).id).payload == {"self": 1, "args": 2}


def test_delay_refuses_positional_arguments(send: Any) -> None:
    with pytest.raises(TypeError, match=r"t\.send\.delay\(\) takes the payload as keyword "
                                        r"arguments only .*got 1 positional"):
        send.delay("a@example.com")
    assert not Job.objects.exists()


def test_delay_checks_the_schema(register: Callable) -> None:
    handler = register("t.typed", schema=Email)
    with pytest.raises(InvalidPayload, match=r"payload\['to'\] must be str, got int 5"):
        handler.delay(to=5)


# -- apply_async ------------------------------------------------------------------------------


def test_apply_async_maps_celery_options(send: Any) -> None:
    before = timezone.now()
    got = send.apply_async(kwargs={"to": "a"}, countdown=30, queue="reports", priority=9)
    row = Job.objects.get(id=got.id)
    assert (row.payload, row.queue, row.priority) == ({"to": "a"}, "reports", 9)
    assert before + timedelta(seconds=30) - SLACK <= row.run_at
    assert row.run_at <= timezone.now() + timedelta(seconds=30) + SLACK
    assert row.expires_at is None


def test_apply_async_eta_is_run_at(send: Any) -> None:
    got = send.apply_async(kwargs={}, eta=WHEN)
    assert Job.objects.get(id=got.id).run_at == WHEN


def test_apply_async_passes_this_apps_options(send: Any) -> None:
    got = send.apply_async((), {"to": "a"}, countdown=timedelta(seconds=5), max_retries=4,
                           retry_delay=7, retry_backoff=False, retry_delay_max=70, timeout=12,
                           tags=("welcome", "user:1"), idempotency_key="k-1")
    row = Job.objects.get(id=got.id)
    assert (row.max_attempts, row.retry_delay, row.retry_backoff, row.retry_delay_max,
            row.timeout, row.tags, row.idempotency_key) == (
        5, 7.0, False, 70.0, 12.0, ["welcome", "user:1"], "k-1")
    again = send.apply_async(kwargs={"to": "b"}, idempotency_key="k-1")
    assert again.id == got.id


def test_apply_async_without_kwargs_is_an_empty_payload(send: Any) -> None:
    assert Job.objects.get(id=send.apply_async().id).payload == {}


@pytest.mark.parametrize(("call", "error", "message"), [
    (lambda h: h.apply_async(("a",)), TypeError,
     r"positional args are not supported: a job's payload is a dict, pass kwargs=\{\.\.\.\}"),
    (lambda h: h.apply_async(kwargs=["to"]), TypeError, "kwargs must be a dict, got list"),
    (lambda h: h.apply_async(kwargs={}, link=None, task_id="x"), TypeError,
     r"Celery option\(s\) link, task_id have no equivalent here"),
    (lambda h: h.apply_async(kwargs={}, countdown=5, eta=WHEN), ValueError,
     "pass countdown or eta, not both"),
    (lambda h: h.apply_async(kwargs={}, eta=datetime(2031, 1, 1)), ValueError,
     "run_at must be timezone-aware"),
    (lambda h: h.apply_async(kwargs={}, countdown=-1), ValueError, "delay must be >= 0"),
    (lambda h: h.apply_async(kwargs={}, priority="high"), ValueError,
     "priority must be an integer"),
    (lambda h: h.apply_async(kwargs={"x": {1, 2}}), InvalidPayload,
     r"payload\['x'\] is a set"),
])
def test_apply_async_refuses_bad_input_before_writing(send: Any, call: Callable, error: type,
                                                     message: str) -> None:
    with pytest.raises(error, match=message):
        call(send)
    assert not Job.objects.exists()


# -- expires ----------------------------------------------------------------------------------


def test_expires_in_seconds_counts_from_the_database_clock(send: Any) -> None:
    before = timezone.now()
    got = send.apply_async(kwargs={}, expires=60)
    row = Job.objects.get(id=got.id)
    assert before + timedelta(seconds=60) - SLACK <= row.expires_at
    assert row.expires_at <= timezone.now() + timedelta(seconds=60) + SLACK
    assert got.expires_at == row.expires_at  # the returned job shows what was stored


@pytest.mark.parametrize("expires", [WHEN, timedelta(hours=1)])
def test_expires_takes_a_datetime_or_a_timedelta(send: Any, expires: Any) -> None:
    row = Job.objects.get(id=enqueue("t.send", expires=expires).id)
    if isinstance(expires, datetime):
        assert row.expires_at == WHEN
    else:
        assert abs(row.expires_at - (timezone.now() + expires)) < SLACK


@pytest.mark.parametrize(("options", "message"), [
    ({"expires": 0}, "expires must be > 0"),
    ({"expires": -5}, "expires must be > 0"),
    ({"expires": "soon"}, "expires must be a number of seconds"),
    ({"expires": datetime(2031, 1, 1)}, "expires must be timezone-aware"),
    ({"expires": 30, "delay": 60}, r"expires \(.*\) is not after the job's run time .*could "
                                   "never run"),
    ({"expires": WHEN, "run_at": WHEN}, "is not after the job's run time"),
    ({"expires": datetime(2001, 1, 1, tzinfo=UTC)}, "is not after the job's run time"),
])
def test_bad_expiries_raise(send: Any, options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        enqueue("t.send", **options)
    assert not Job.objects.exists()


def test_enqueue_many_takes_expires(send: Any) -> None:
    a, b = enqueue_many([{"type": "t.send", "expires": 60}, {"type": "t.send"}])
    assert Job.objects.get(id=a.id).expires_at is not None
    assert Job.objects.get(id=b.id).expires_at is None


def test_a_job_not_started_before_it_expires_is_cancelled_not_run(
        send: Any, ran: list[Any]) -> None:
    cancelled: list[Job] = []

    def receiver(sender: type, job: Job, **kwargs: Any) -> None:
        cancelled.append(job)

    expired = send.apply_async(kwargs={"n": 1}, expires=60)
    fresh = send.apply_async(kwargs={"n": 2}, expires=60)
    Job.objects.filter(id=expired.id).update(expires_at=Now() - timedelta(seconds=1))

    assert run() == 1  # only the fresh one is claimed
    assert ran == [{"n": 2}]
    edge_signals.job_cancelled.connect(receiver, weak=False)
    try:
        assert Supervisor().run_once()["expired"] == 1
    finally:
        edge_signals.job_cancelled.disconnect(receiver)
    row = get_job(expired.id)
    assert row.status == "cancelled"
    assert row.attempts == 0 and row.completed_at is not None
    assert kinds(row) == ["added", "cancelled"]
    assert JobEvent.objects.filter(job_id=row.id, type="cancelled").get().data == {
        "reason": "expired"}
    assert [j.id for j in cancelled] == [expired.id]
    assert get_job(fresh.id).status == "completed"
    assert cancel_expired_jobs() == 0


def test_expiry_also_stops_retries(register: Callable) -> None:
    def boom(payload: Any, ctx: Any) -> None:
        raise RuntimeError("try again")

    register("t.flaky", boom)
    job = enqueue("t.flaky", expires=3600, retry_delay=0, max_attempts=3)
    assert run(("default",)) == 1
    assert get_job(job.id).status == "pending"
    Job.objects.filter(id=job.id).update(expires_at=Now() - timedelta(seconds=1))
    assert run(("default",)) == 0
    assert cancel_expired_jobs() == 1
    assert (get_job(job.id).status, get_job(job.id).attempts) == ("cancelled", 1)


def test_retry_job_of_an_expired_job_drops_the_expiry(send: Any, ran: list[Any]) -> None:
    job = send.apply_async(kwargs={}, expires=60)
    Job.objects.filter(id=job.id).update(expires_at=Now() - timedelta(seconds=1))
    cancel_expired_jobs()
    assert retry_job(job.id)
    assert get_job(job.id).expires_at is None
    assert run() == 1
    assert get_job(job.id).status == "completed"


def test_the_portable_store_skips_expired_jobs_too(send: Any) -> None:
    expired = send.apply_async(kwargs={}, expires=60)
    fresh = send.apply_async(kwargs={}, expires=60)
    Job.objects.filter(id=expired.id).update(expires_at=Now() - timedelta(seconds=1))
    claimed = Store("default").claim("portable", ["emails"], 10)
    assert [j.id for j in claimed] == [fresh.id]


# -- typing: mypy with celery-types -------------------------------------------------------------


def _expected_errors(path: Path) -> set[tuple[int, str]]:
    marker = re.compile(r"  # E: ([a-z-]+)$")
    out = set()
    for number, line in enumerate(path.read_text().splitlines(), 1):
        found = marker.search(line)
        if found:
            out.add((number, found.group(1)))
    return out


@pytest.mark.django_db(databases=[])
def test_mypy_reports_exactly_the_misuses_marked_in_the_typed_example() -> None:
    pytest.importorskip("mypy")
    try:
        importlib.metadata.distribution("celery-types")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("celery-types is not installed")
    example = ROOT / "tests" / "typing" / "celery_api.py"
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--follow-imports=silent", "--show-error-codes",
         "--no-error-summary", "--hide-error-context", str(example.relative_to(ROOT))],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    found = set()
    for line in proc.stdout.splitlines():
        head, sep, rest = line.partition(": error: ")
        if sep and head.startswith("tests/typing/celery_api.py:"):
            code = rest.rsplit("[", 1)[1].rstrip("]")
            found.add((int(head.split(":")[1]), code))
    assert found == _expected_errors(example), proc.stdout + proc.stderr
