"""Lone surrogates (``os.fsdecode`` of a non-UTF-8 file name gives one) are refused before
anything is written, with an error naming where they are; no database can store them."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from django_edgejobs import InvalidPayload, enqueue, enqueue_many, job
from django_edgejobs.models import Job
from django_edgejobs.services.validation import check_result

pytestmark = pytest.mark.django_db

BAD = "report-\udcff.csv"  # what os.fsdecode(b"report-\xff.csv") returns


@pytest.mark.parametrize(("payload", "named"), [
    ({"file": BAD}, "payload['file'] contains a lone surrogate \\udcff"),
    ({"files": [{"name": BAD}]}, "payload['files'][0]['name'] contains a lone surrogate"),
    ({BAD: 1}, "has a key 'report-\\udcff.csv' with a lone surrogate \\udcff"),
])
def test_a_payload_with_a_lone_surrogate_is_refused_naming_it(register, payload, named):
    register("t.s")
    with pytest.raises(InvalidPayload, match="which UTF-8 cannot encode") as caught:
        enqueue("t.s", payload)
    assert named in str(caught.value)
    with pytest.raises(InvalidPayload, match="lone surrogate"):
        enqueue_many([{"type": "t.s", "payload": {"ok": 1}}, {"type": "t.s", "payload": payload}])
    assert Job.objects.count() == 0


@pytest.mark.parametrize(("options", "named"), [
    ({"idempotency_key": BAD}, "idempotency_key contains a lone surrogate \\udcff"),
    ({"tags": ["ok", BAD]}, "a tag contains a lone surrogate \\udcff"),
    ({"queue": BAD}, "queue contains a lone surrogate \\udcff"),
])
def test_options_with_a_lone_surrogate_are_refused_naming_them(register, options, named):
    register("t.s")
    with pytest.raises(ValueError, match="which UTF-8 cannot encode") as caught:
        enqueue("t.s", {"n": 1}, **options)
    assert named in str(caught.value)
    with pytest.raises(ValueError, match="lone surrogate"):
        enqueue_many([{"type": "t.s", "payload": {}, **options}])
    assert Job.objects.count() == 0


def test_a_job_type_with_a_lone_surrogate_is_refused():
    with pytest.raises(ImproperlyConfigured, match="no lone surrogate"):
        job("t.\udcff")(lambda payload, ctx: None)
    with pytest.raises(ValueError, match=r"t\.\\udcff"):  # unknown: named, not a crash
        enqueue("t.\udcff", {})


def test_a_result_with_a_lone_surrogate_names_it():
    with pytest.raises(InvalidPayload, match=r"result\['name'\] contains a lone surrogate"):
        check_result({"name": BAD})


def test_valid_non_ascii_text_is_kept(register):
    register("t.s")
    job = enqueue("t.s", {"name": "café ☕ 𝄞", "ключ": "значение"}, tags=["ünïcode"],
                  idempotency_key="clé-1")
    job.refresh_from_db()
    assert job.payload == {"name": "café ☕ 𝄞", "ключ": "значение"}
    assert job.tags == ["ünïcode"] and job.idempotency_key == "clé-1"


def test_a_handler_error_with_a_lone_surrogate_keeps_its_retry_and_its_text(register):
    """Once: 'the outcome could not be stored', the job failed for good at attempt 1 of 2 and
    the error was lost. The text is stored with the surrogate escaped; the retry happens."""
    from django_edgejobs import get_job
    from django_edgejobs.runtime.worker import Worker

    def handler(payload, ctx):
        raise OSError(f"cannot open {BAD}")

    register("t.s", handler, max_attempts=2, retry_delay=0)
    queued = enqueue("t.s", {})
    assert Worker(["default"], worker_id="hostile").run_once() == 1
    stored = get_job(queued.id)
    assert stored.status == "pending" and stored.attempts == 1
    assert stored.last_error == "OSError: cannot open report-\\udcff.csv"
    assert "report-\\udcff.csv" in stored.error_history[-1]["traceback"]
