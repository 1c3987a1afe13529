"""OpenTelemetry with no code of the user's: a PRODUCER span per enqueue whose context the
job keeps, a CONSUMER span per attempt (its child), errors recorded, and the metrics; checked
with the SDK's in-memory exporter and reader. Nothing when ``EDGEJOBS["TRACING"]`` is False,
and no import of OpenTelemetry then."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk", reason="the [otel] extra is not installed")

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import SpanKind, StatusCode

from django_edgejobs import enqueue, enqueue_many, get_job, telemetry
from django_edgejobs.testing import run_jobs

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


class Otel:
    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def finished(self, kind: SpanKind | None = None) -> list[Any]:
        return [s for s in self.spans.get_finished_spans() if kind is None or s.kind == kind]

    def points(self, name: str) -> list[Any]:
        data = self.reader.get_metrics_data()
        return [p for rm in data.resource_metrics for sm in rm.scope_metrics
                for m in sm.metrics if m.name == name for p in m.data.data_points]


@pytest.fixture
def otel(monkeypatch) -> Iterator[Otel]:  # type: ignore[no-untyped-def]
    """The SDK's in-memory exporter and reader, as a project's OpenTelemetry setup would
    install them (the globals can be set once per process: the module's hooks are used)."""
    o = Otel()
    monkeypatch.setattr(telemetry, "_tracer",
                        lambda: o.tracer_provider.get_tracer(telemetry.SYSTEM))
    monkeypatch.setattr(telemetry, "_meter_provider", lambda: o.meter_provider)
    yield o
    o.meter_provider.shutdown()


def test_an_enqueue_is_a_producer_span_and_its_job_keeps_the_context(otel, register):
    register("t.report")
    job = enqueue("t.report", {"n": 1}, queue="reports")
    (span,) = otel.finished(SpanKind.PRODUCER)
    assert span.name == "send reports"
    assert span.attributes["messaging.system"] == "django_edgejobs"
    assert span.attributes["messaging.destination.name"] == "reports"
    assert span.attributes["messaging.message.id"] == str(job.id)
    assert span.attributes["messaging.operation.type"] == "send"
    stored = json.loads(get_job(job.id).trace_context)
    assert stored["traceparent"].split("-")[1] == f"{span.context.trace_id:032x}"
    jobs = enqueue_many([{"type": "t.report"}, {"type": "t.report"}])
    batch = otel.finished(SpanKind.PRODUCER)[-1]
    assert batch.attributes["messaging.batch.message_count"] == 2
    assert {get_job(j.id).trace_context for j in jobs} == {get_job(jobs[0].id).trace_context}


def test_each_attempt_is_a_consumer_span_child_of_the_enqueue(otel, register):
    register("t.report", lambda payload, ctx: {"rows": 3})
    job = enqueue("t.report")
    assert run_jobs() == 1
    (producer,) = otel.finished(SpanKind.PRODUCER)
    (consumer,) = otel.finished(SpanKind.CONSUMER)
    assert consumer.name == "process t.report"
    assert consumer.context.trace_id == producer.context.trace_id
    assert consumer.parent.span_id == producer.context.span_id
    assert consumer.attributes["messaging.message.id"] == str(job.id)
    assert consumer.attributes["messaging.operation.type"] == "process"
    assert consumer.attributes["edgejobs.job.attempt"] == 1
    assert consumer.attributes["edgejobs.outcome"] == "completed"
    assert consumer.status.status_code == StatusCode.UNSET


def test_a_failed_attempt_records_its_error_and_sets_the_status(otel, register):
    def boom(payload, ctx):  # type: ignore[no-untyped-def]
        raise ValueError("no rows")

    register("t.report", boom, max_attempts=2, retry_delay=0)
    enqueue("t.report")
    run_jobs()
    first, second = otel.finished(SpanKind.CONSUMER)
    assert [first.attributes["edgejobs.outcome"], second.attributes["edgejobs.outcome"]] == [
        "retry", "failed"]
    for span in (first, second):
        assert span.status.status_code == StatusCode.ERROR
        (event,) = [e for e in span.events if e.name == "exception"]
        assert event.attributes["exception.type"] == "ValueError"
        assert event.attributes["exception.message"] == "no rows"
        assert "Traceback" in event.attributes["exception.stacktrace"]


def test_outcomes_wait_and_run_times_and_queue_depth_are_metrics(otel, register):
    register("t.report", lambda payload, ctx: None)
    enqueue("t.report")
    enqueue("t.report", queue="reports")
    enqueue("t.report", queue="reports", delay=3600)  # pending, not due
    run_jobs()
    outcomes = {(p.attributes["messaging.destination.name"], p.attributes["edgejobs.outcome"]):
                p.value for p in otel.points("edgejobs.job.outcomes")}
    assert outcomes == {("default", "completed"): 1, ("reports", "completed"): 1}
    assert sum(p.count for p in otel.points("edgejobs.job.run_time")) == 2
    assert sum(p.count for p in otel.points("edgejobs.job.wait_time")) == 2
    depth = {p.attributes["messaging.destination.name"]: p.value
             for p in otel.points("edgejobs.queue.depth")}
    assert depth == {"reports": 1}


def test_tracing_false_makes_no_span_and_stores_no_context(otel, register, settings):
    settings.EDGEJOBS = {**settings.EDGEJOBS, "TRACING": False}
    register("t.report")
    job = enqueue("t.report")
    run_jobs()
    assert otel.finished() == [] and get_job(job.id).trace_context == ""


@pytest.mark.django_db(transaction=True)
def test_with_tracing_off_opentelemetry_is_never_imported():
    from tests.acceptance.conftest import database_url

    script = ("import sys, django; django.setup()\n"
              "from django_edgejobs import enqueue\n"
              "from django_edgejobs.testing import run_jobs\n"
              "from django_edgejobs.registry import get_registry, JobType\n"
              "get_registry()._types['t.x'] = JobType(name='t.x', func=lambda p, c: 1)\n"
              "enqueue('t.x'); run_jobs()\n"
              "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n")
    env = {**os.environ, "DATABASE_URL": database_url(),
           "EDGEJOBS_JSON": json.dumps({"TRACING": False}),
           "DJANGO_SETTINGS_MODULE": "testproject.settings",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "testproject"), str(ROOT)])}
    out = subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT, text=True,
                         capture_output=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_without_a_configured_sdk_nothing_is_done():
    """The API alone (no tracer or meter provider set by the project): its no-op objects
    would still cost about 25 µs per job, so the hooks do nothing at all."""
    assert telemetry.enabled()
    assert telemetry._tracer() is None and telemetry._meter_provider() is None
    with telemetry.consuming(object()) as done:  # type: ignore[arg-type]  # never read
        assert done is telemetry._nothing
