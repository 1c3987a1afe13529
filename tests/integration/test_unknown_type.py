"""Rolling deploys: a worker without the handler of a claimed job's type hands the job back
(no attempt used, due again a little later) until ``UNKNOWN_TYPE_GRACE`` has passed since the
job's creation, then fails it; ``check --database`` warns about such jobs (W003)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.checks import Warning, run_checks
from django.db.models import F
from django.db.models.functions import Now
from django.test import override_settings
from django.utils import timezone

from django_edgejobs import enqueue, get_job, get_job_events
from django_edgejobs.checks import check_settings, check_unknown_job_types
from django_edgejobs.models import Job
from django_edgejobs.registry import get_registry
from django_edgejobs.runtime.worker import Worker

pytestmark = pytest.mark.django_db


def run(worker_id: str = "old-worker") -> int:
    return Worker(["default"], worker_id=worker_id).run_once()


def events(job) -> list[str]:
    return [e.type for e in get_job_events(job.id)]


def enqueue_unknown(register, name: str = "t.new", **options):
    """A job of a type this process does not know, as if enqueued by newer code."""
    register(name)
    job = enqueue(name, {"n": 1}, **options)
    get_registry().unregister(name)
    return job


def backdate(job, seconds: float) -> None:
    """Make the job ``seconds`` older, and due now."""
    Job.objects.filter(id=job.id).update(
        created_at=F("created_at") - timedelta(seconds=seconds), run_at=Now())


# -- the worker --------------------------------------------------------------------------------


def test_a_job_of_an_unknown_type_is_released_without_using_an_attempt(register):
    job = enqueue_unknown(register, max_attempts=1)
    before = timezone.now()
    assert run() == 1
    job = get_job(job.id)
    assert (job.status, job.attempts, job.lease_owner, job.lease_token) == ("pending", 0, "", None)
    assert job.completed_at is None and job.error_history == []
    assert "no handler is registered for job type 't.new' in worker old-worker" in job.last_error
    assert "UNKNOWN_TYPE_GRACE" in job.last_error
    # Due again a little later, so the same worker does not claim it in a loop.
    assert before + timedelta(seconds=0.9) < job.run_at < before + timedelta(seconds=5)
    assert run() == 0
    assert events(job) == ["added", "processing", "released"]
    released = get_job_events(job.id)[-1].data
    assert released["reason"] == "unknown_type" and released["worker"] == "old-worker"
    assert released["attempt"] == 1 and 590 < released["grace_left"] <= 600


def test_released_again_and_again_it_never_uses_its_attempts(register):
    job = enqueue_unknown(register, max_attempts=2)
    for _ in range(4):
        Job.objects.filter(id=job.id).update(run_at=Now())
        assert run() == 1
    job = get_job(job.id)
    assert (job.status, job.attempts) == ("pending", 0)
    assert events(job)[1:] == ["processing", "released"] * 4


def test_the_delay_grows_with_the_age_of_the_job_and_ends_with_the_grace(register):
    job = enqueue_unknown(register)
    backdate(job, 200)  # a tenth of its age: 20 s
    before = timezone.now()
    run()
    run_at = get_job(job.id).run_at
    assert before + timedelta(seconds=19) < run_at < before + timedelta(seconds=22)
    backdate(job, 395)  # now 595 s old: 5 s of grace left, less than 30 s (the cap)
    before = timezone.now()
    run()
    job = get_job(job.id)
    assert job.status == "pending" and job.attempts == 0
    assert before + timedelta(seconds=3) < job.run_at < before + timedelta(seconds=6)


def test_after_the_grace_the_job_fails_for_good_with_a_clear_error(register):
    job = enqueue_unknown(register, max_attempts=3)
    run()
    backdate(job, 601)
    assert run() == 1
    job = get_job(job.id)
    error = ("UnknownJobType: no worker has registered a handler for job type 't.new' within "
             "UNKNOWN_TYPE_GRACE (600 s) of its creation")
    assert (job.status, job.attempts, job.last_error) == ("failed", 1, error)
    assert job.completed_at is not None
    assert job.error_history[-1]["exception"] == "django_edgejobs.exceptions.UnknownJobType"
    assert events(job) == ["added", "processing", "released", "processing", "failed"]
    assert get_job_events(job.id)[-1].data["permanent"] is True


@override_settings(EDGEJOBS={"UNKNOWN_TYPE_GRACE": 30})
def test_the_grace_is_a_setting(register):
    job = enqueue_unknown(register)
    run()
    assert get_job(job.id).status == "pending"
    backdate(job, 31)
    run()
    job = get_job(job.id)
    assert job.status == "failed" and "UNKNOWN_TYPE_GRACE (30 s)" in job.last_error


@override_settings(EDGEJOBS={"UNKNOWN_TYPE_GRACE": 0})
def test_a_grace_of_zero_fails_at_the_first_claim(register):
    job = enqueue_unknown(register)
    run()
    job = get_job(job.id)
    assert (job.status, job.attempts) == ("failed", 1)
    assert "UNKNOWN_TYPE_GRACE (0 s)" in job.last_error


def test_a_worker_that_has_the_handler_later_runs_it_with_attempt_one(register):
    job = enqueue_unknown(register)
    run()  # the old worker hands it back
    seen = []
    register("t.new", lambda payload, ctx: seen.append(ctx.attempt) or "done")  # new code
    Job.objects.filter(id=job.id).update(run_at=Now())
    assert run("new-worker") == 1
    job = get_job(job.id)
    assert (job.status, job.attempts, job.result, seen) == ("completed", 1, "done", [1])
    assert events(job) == ["added", "processing", "released", "processing", "completed"]


def test_other_jobs_of_the_same_claim_run_as_usual(register):
    register("t.ok", lambda payload, ctx: "fine")
    unknown = enqueue_unknown(register, priority=5)
    ok = enqueue("t.ok")
    assert Worker(["default"], worker_id="old-worker", batch_size=5).run_once() == 2
    assert get_job(unknown.id).status == "pending"
    assert get_job(ok.id).status == "completed"


# -- the system check (W003) -------------------------------------------------------------------


def test_the_check_names_the_unknown_types_with_their_counts(register):
    register("t.known")
    enqueue("t.known")
    for _ in range(2):
        enqueue_unknown(register, "t.new")
    enqueue_unknown(register, "t.other")
    [problem] = check_unknown_job_types(databases=["default"])
    assert isinstance(problem, Warning) and problem.id == "edgejobs.W003"
    assert problem.msg == ("3 pending or waiting job(s) have a type with no handler registered "
                           "in this process: 't.new' (2), 't.other' (1)")
    assert "EDGEJOBS['UNKNOWN_TYPE_GRACE'] (600 s)" in problem.hint
    assert "edgejobs.W003" in [m.id for m in run_checks(databases=["default"])]


def test_the_check_names_five_types_and_counts_the_others(register):
    for n in range(7):
        enqueue_unknown(register, f"t.new{n}")
    [problem] = check_unknown_job_types(databases=["default"])
    assert problem.msg.startswith("7 pending or waiting job(s)")
    assert problem.msg.endswith("'t.new4' (1) and 2 more type(s)")


def test_the_check_is_silent_when_every_queued_type_is_known(register):
    register("t.known")
    enqueue("t.known")
    finished = enqueue_unknown(register, "t.gone")
    Job.objects.filter(id=finished.id).update(status="completed")  # only queued jobs count
    assert check_unknown_job_types(databases=["default"]) == []


def test_the_check_runs_only_for_the_databases_django_asks_about(register):
    enqueue_unknown(register)
    assert check_unknown_job_types(databases=None) == []
    assert check_unknown_job_types(databases=["other"]) == []
    assert "edgejobs.W003" not in [m.id for m in run_checks()]  # plain `manage.py check`


def test_the_check_is_skipped_when_the_tables_are_missing(register, monkeypatch):
    job = enqueue_unknown(register)
    monkeypatch.setattr(Job._meta, "db_table", "edgejobs_not_migrated")
    assert check_unknown_job_types(databases=["default"]) == []
    monkeypatch.undo()
    assert get_job(job.id) is not None  # the test's transaction is still usable


# -- the setting -------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [-1, -0.5, "600", None, True, [600]])
def test_the_grace_must_be_a_number_of_seconds(value):
    with override_settings(EDGEJOBS={"UNKNOWN_TYPE_GRACE": value}):
        problems = [(p.id, p.msg) for p in check_settings()]
    assert problems == [("edgejobs.E005",
                         f"EDGEJOBS['UNKNOWN_TYPE_GRACE'] must be a number >= 0, got {value!r}")]


@pytest.mark.parametrize("value", [0, 30, 600.5])
def test_a_grace_of_zero_or_more_seconds_is_fine(value):
    with override_settings(EDGEJOBS={"UNKNOWN_TYPE_GRACE": value}):
        assert check_settings() == []
