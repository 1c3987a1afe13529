"""The helpers users write their tests with: run_jobs, CapturedJobs, the pytest plugin and the
ImmediateBackend / DummyBackend test backends."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from datetime import timedelta
from functools import partial
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from django.core import mail
from django.db import transaction
from django.tasks import TaskResultStatus, default_task_backend, task_backends
from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist
from django.tasks.signals import task_enqueued, task_finished, task_started
from django.test import TestCase, override_settings
from django.utils import timezone
from qa.models import Run
from shop import tasks as shop_tasks
from shop.models import Order

from django_edgejobs import (
    InvalidPayload,
    Retry,
    complete_token,
    enqueue,
    get_job,
    get_job_events,
)
from django_edgejobs.models import Job
from django_edgejobs.testing import CapturedJobs, DummyBackend, ImmediateBackend, run_jobs
from tests.integration import sample_tasks as t
from tests.integration.test_tasks_backend import captured

ROOT = Path(__file__).resolve().parents[2]
IMMEDIATE = {"default": {"BACKEND": "django_edgejobs.testing.ImmediateBackend",
                         "QUEUES": ["default", "emails"]}}
DUMMY = {"default": {"BACKEND": "django_edgejobs.testing.DummyBackend",
                     "QUEUES": ["default", "emails"]}}


@pytest.fixture(autouse=True)
def _clean_calls():
    t.CALLS.clear()
    yield
    t.CALLS.clear()


# -- run_jobs inside Django's TestCase ----------------------------------------------------


def place_order(email: str) -> Order:
    """Code under test: enqueues the receipt once the order is committed (Django's advice)."""
    with transaction.atomic():
        order = Order.objects.create(customer_email=email, total_cents=1999)
        transaction.on_commit(partial(shop_tasks.send_receipt.enqueue, order.pk))
    return order


class RunJobsInATestCase(TestCase):
    def test_runs_jobs_and_tasks_in_the_test_transaction(self):
        job = enqueue("qa.record")
        result = t.calculate_meaning_of_life.enqueue()
        self.assertEqual(run_jobs(), 2)
        self.assertEqual(get_job(job.id).status, "completed")
        self.assertEqual(Run.objects.filter(job_id=job.id).count(), 1)
        self.assertEqual(t.calculate_meaning_of_life.get_result(result.id).return_value, 42)
        self.assertEqual(run_jobs(), 0)

    def test_on_commit_enqueues_need_capture_on_commit_callbacks(self):
        place_order("ada@example.com")
        # TestCase never commits: the on_commit enqueue has not happened.
        self.assertEqual(run_jobs(), 0)

        with self.captureOnCommitCallbacks(execute=True):
            order = place_order("grace@example.com")
        self.assertEqual(run_jobs(), 1)
        self.assertEqual(len(mail.outbox), 1)
        self.assertEqual(mail.outbox[0].to, ["grace@example.com"])
        [job] = Job.objects.filter(type="task:shop.tasks.send_receipt")
        self.assertEqual(job.status, "completed")
        self.assertEqual(job.result["order_id"], order.pk)


# -- run_jobs with pytest-django's db fixture -----------------------------------------------


@pytest.mark.django_db
def test_run_jobs_inside_the_db_fixture(register):
    seen = []
    register("t.one", lambda payload, ctx: seen.append(payload["n"]) or payload["n"])
    jobs = [enqueue("t.one", {"n": n}, priority=n) for n in range(3)]
    assert run_jobs() == 3
    assert seen == [2, 1, 0]  # best priority first, one at a time
    assert [get_job(j.id).result for j in jobs] == [0, 1, 2]
    kinds = [e.type for e in get_job_events(jobs[0].id)]
    assert kinds == ["added", "processing", "completed"]  # the worker's own path


@pytest.mark.django_db
def test_run_jobs_limits_itself_to_queues(register):
    register("t.one", lambda payload, ctx: None)
    emails = enqueue("t.one", queue="emails")
    reports = enqueue("t.one", queue="reports")
    default = enqueue("t.one")
    assert run_jobs(queue="emails") == 1
    assert get_job(emails.id).status == "completed"
    assert get_job(reports.id).status == get_job(default.id).status == "pending"
    assert run_jobs(queue=["reports", "default"]) == 2
    assert run_jobs() == 0


@pytest.mark.django_db
def test_run_jobs_runs_what_the_jobs_enqueue_and_leaves_future_retries(register):
    def parent(payload, ctx):
        enqueue("t.child", {"n": payload["n"] + 1})

    def child(payload, ctx):
        raise Retry(delay=600)

    register("t.parent", parent)
    register("t.child", child)
    enqueue("t.parent", {"n": 1})
    assert run_jobs() == 2
    [kid] = Job.objects.filter(type="t.child")
    assert kid.status == "pending" and kid.attempts == 1  # its retry is not due yet
    assert run_jobs() == 0


@pytest.mark.django_db
def test_run_jobs_resumes_due_waits_so_durable_flows_can_be_driven(register):
    def flow(payload, ctx):
        ctx.wait_for(hours=1)
        token = ctx.create_token(timeout=3600)
        answer = ctx.wait_for_token(token.id)
        return {"answer": answer.output}

    register("t.flow", flow)
    job = enqueue("t.flow")
    assert run_jobs() == 1
    assert get_job(job.id).status == "waiting"
    assert run_jobs() == 0  # the hour has not passed
    past = (timezone.now() - timedelta(seconds=1)).isoformat()
    steps = {**get_job(job.id).steps, "edgejobs:wait:1": past}
    Job.objects.filter(id=job.id).update(run_at=timezone.now() - timedelta(seconds=1),
                                         steps=steps)
    assert run_jobs() == 1  # resumed, then waits for its token
    job = get_job(job.id)
    assert job.status == "waiting" and job.wait_token
    assert complete_token(job.wait_token, {"approved": True})
    assert run_jobs() == 1
    assert get_job(job.id).result == {"answer": {"approved": True}}


@pytest.mark.django_db
def test_run_jobs_stops_a_job_that_enqueues_jobs_without_end(register):
    register("t.forever", lambda payload, ctx: enqueue("t.forever"))
    enqueue("t.forever")
    with pytest.raises(RuntimeError, match="ran 5 jobs and more are due"):
        run_jobs(max_jobs=5)


@pytest.mark.django_db
def test_keyboard_interrupt_stops_run_jobs_and_gives_the_job_back(register):
    def interrupted(payload, ctx):
        raise KeyboardInterrupt

    register("t.interrupted", interrupted)
    job = enqueue("t.interrupted")
    with pytest.raises(KeyboardInterrupt):
        run_jobs()
    job = get_job(job.id)
    assert job.status == "pending" and job.attempts == 0 and not job.lease_owner


# -- CapturedJobs and the pytest plugin's fixtures ----------------------------------------


@pytest.mark.django_db
def test_captured_jobs_lists_what_was_written_since(register):
    register("t.one")
    before = enqueue("t.one")
    captured_jobs = CapturedJobs()
    first = enqueue("t.one", queue="emails")
    result = t.noop_task.enqueue()
    assert [j.id for j in captured_jobs] == [first.id, Job.objects.get(id=result.id).id]
    assert before.id not in {j.id for j in captured_jobs()}
    assert [j.id for j in captured_jobs("t.one")] == [first.id]
    assert [str(j.id) for j in captured_jobs(task=t.noop_task)] == [result.id]
    assert [str(j.id) for j in captured_jobs(task=t.noop_task.module_path)] == [result.id]
    assert captured_jobs(queue="default")[0].type == "task:tests.integration.sample_tasks.noop_task"
    assert len(captured_jobs) == 2 and "2 job(s)" in repr(captured_jobs)


def test_the_plugin_fixtures(edgejobs_run, edgejobs_enqueued):
    assert edgejobs_enqueued() == []
    job = enqueue("qa.record")
    result = t.record.enqueue("via the plugin")
    assert [j.type for j in edgejobs_enqueued()] == [
        "qa.record", "task:tests.integration.sample_tasks.record"]
    assert edgejobs_run() == 2
    assert get_job(job.id).status == "completed"
    assert t.record.get_result(result.id).return_value == "via the plugin"
    assert edgejobs_run is run_jobs and isinstance(edgejobs_enqueued, CapturedJobs)


def test_the_plugin_is_registered_by_an_entry_point():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    entry = project["project"]["entry-points"]["pytest11"]
    assert entry == {"edgejobs": "django_edgejobs.pytest_plugin"}
    from django_edgejobs import pytest_plugin

    assert callable(pytest_plugin.edgejobs_run) and callable(pytest_plugin.edgejobs_enqueued)


USER_TESTS = '''
from django_edgejobs import enqueue, get_job


def test_fixtures_of_the_plugin(edgejobs_run, edgejobs_enqueued):
    job = enqueue("qa.record")
    assert [j.id for j in edgejobs_enqueued("qa.record")] == [job.id]
    assert edgejobs_run() == 1
    assert get_job(job.id).status == "completed"


def test_each_test_starts_empty(edgejobs_run, edgejobs_enqueued):
    assert edgejobs_enqueued() == [] and edgejobs_run() == 0
'''


def test_the_plugin_in_a_fresh_pytest_run_as_users_load_it(tmp_path):
    """A user's test file, run by pytest with pytest-django. Where the package is installed
    with its entry point, pytest loads the plugin by itself (and ``-p`` with the module would
    register it twice); in a checkout installed without it, ``-p`` loads it."""
    installed = any(ep.name == "edgejobs" and ep.value == "django_edgejobs.pytest_plugin"
                    for ep in entry_points(group="pytest11"))
    load = [] if installed else ["-p", "django_edgejobs.pytest_plugin"]
    (tmp_path / "test_user.py").write_text(USER_TESTS)
    env = dict(os.environ)
    env.update(
        PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "testproject"),
                                    *filter(None, [os.environ.get("PYTHONPATH")])]),
        DJANGO_SETTINGS_MODULE="testproject.settings",
        EDGEJOBS_TEST_DB=f"{os.environ.get('EDGEJOBS_TEST_DB', 'test-db')}_plugin",
    )
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", *load, "-p", "no:cacheprovider",
         "-p", "no:warnings", "test_user.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 passed" in proc.stdout


# -- the test backends ----------------------------------------------------------------------


@override_settings(TASKS=IMMEDIATE)
def test_immediate_backend_runs_at_enqueue_with_the_task_options():
    assert isinstance(task_backends["default"], ImmediateBackend)
    result = t.with_options.enqueue("ada")
    assert result.status == TaskResultStatus.SUCCESSFUL and result.return_value == "hello ada"
    assert result.task.tags == ("mail", "welcome") and result.task.max_attempts == 5
    assert result.attempts == 1 and result.finished_at >= result.started_at
    assert default_task_backend.get_result(result.id) is result
    with pytest.raises(TaskResultDoesNotExist):
        default_task_backend.get_result("nope")


@override_settings(TASKS=IMMEDIATE)
def test_immediate_backend_retries_at_once_up_to_max_attempts():
    result = t.fails_then_succeeds.enqueue(2)
    assert result.status == TaskResultStatus.SUCCESSFUL and result.attempts == 3
    assert [c for _, c in t.CALLS] == [1, 2, 3]
    assert [e.exception_class for e in result.errors] == [ConnectionError, ConnectionError]
    assert result.return_value == {"attempt": 3, "worker_ids": result.worker_ids, "errors": 2}

    failed = t.fails_then_succeeds.enqueue(5)  # max_attempts=3
    assert failed.status == TaskResultStatus.FAILED and failed.attempts == 3
    assert len(failed.errors) == 3
    with pytest.raises(ValueError, match="Task failed"):
        _ = failed.return_value

    # No max_attempts on the task: EDGEJOBS["DEFAULT_MAX_ATTEMPTS"] (3).
    second_try = t.check_context.enqueue(2)
    assert second_try.status == TaskResultStatus.SUCCESSFUL and second_try.attempts == 2
    with override_settings(EDGEJOBS={"DEFAULT_MAX_ATTEMPTS": 1}):
        assert t.check_context.enqueue(2).status == TaskResultStatus.FAILED

    permanent = t.permanent.enqueue()
    assert permanent.status == TaskResultStatus.FAILED and permanent.attempts == 1


@override_settings(TASKS=IMMEDIATE)
def test_immediate_backend_signals_logs_and_interrupts(caplog):
    with captured(task_enqueued, task_started, task_finished) as seen:
        result = t.fails_then_succeeds.enqueue(1)
    assert [(name, r.id) for name, _, r in seen] == [
        ("enqueued", result.id), ("started", result.id), ("started", result.id),
        ("finished", result.id)]
    assert {sender for _, sender, _ in seen} == {ImmediateBackend}
    with caplog.at_level("ERROR", logger="django.tasks"):
        failed = t.failing_task_value_error.enqueue()
    assert failed.status == TaskResultStatus.FAILED
    assert "This Task failed due to ValueError" in caplog.text  # as Django logs it
    with pytest.raises(KeyboardInterrupt):
        t.failing_task_keyboard_interrupt.enqueue()


@override_settings(TASKS=IMMEDIATE)
def test_immediate_backend_honours_idempotency_keys_and_storable_results():
    keyed = t.record.using(idempotency_key="once")
    first = keyed.enqueue("first")
    assert keyed.enqueue("second") is first
    assert t.CALLS == [("record", "first")]
    infinite = t.returns.enqueue(float("inf"))
    assert infinite.status == TaskResultStatus.FAILED
    assert infinite.errors[0].exception_class is InvalidPayload  # a job cannot store it
    with pytest.raises(InvalidTask, match="does not support run_after"):
        t.record.using(run_after=timedelta(seconds=5))
    default_task_backend.clear()
    with pytest.raises(TaskResultDoesNotExist):
        default_task_backend.get_result(first.id)


@override_settings(TASKS=DUMMY)
def test_dummy_backend_stores_results_with_the_task_options():
    backend = task_backends["default"]
    assert isinstance(backend, DummyBackend)
    backend.clear()
    result = t.with_options.using(tags=["vip"], run_after=timedelta(minutes=5)).enqueue("ada")
    assert result.status == TaskResultStatus.READY and t.CALLS == []
    [stored] = backend.results
    assert stored.task.tags == ("vip",) and stored.task.max_attempts == 5
    assert stored.task.run_after == timedelta(minutes=5)
    keyed = t.record.using(idempotency_key="once")
    first = keyed.enqueue("first")
    again = keyed.enqueue("second")
    assert again == first and again is not first and len(backend.results) == 2
    assert backend.get_result(first.id).args == ["first"]
    with pytest.raises(ValueError, match="held by result"):
        t.noop_task.using(idempotency_key="once").enqueue()
    backend.clear()
    assert backend.results == []


@override_settings(TASKS=DUMMY)
def test_dummy_backend_validates_like_the_real_one():
    with pytest.raises(InvalidTask, match="Queue 'reports' is not valid"):
        t.noop_task.using(queue_name="reports").enqueue()
    with pytest.raises(InvalidTask, match="max_attempts must be >= 1"):
        t.record.using(max_attempts=0)

