"""Work across jobs: ``depends_on``, batches with callbacks, and the canvas (``chain``,
``group``, ``chord``), through the real worker code (``run_jobs``) on the suite's database."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.db import transaction

from django_edgejobs import (
    PermanentError,
    cancel_job,
    chain,
    chord,
    enqueue,
    enqueue_batch,
    enqueue_many,
    get_batch,
    get_job,
    get_job_events,
    group,
    retry_job,
    sig,
)
from django_edgejobs.models import Job, JobDependency
from django_edgejobs.models.job import DEPENDENCIES
from django_edgejobs.runtime.maintenance.resumer import settle_stranded
from django_edgejobs.store.dependencies import STRANDED_AFTER
from django_edgejobs.testing import run_jobs

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def ran(register: Callable) -> list[tuple[str, Any]]:
    """``t.step`` records (name, what its dependencies returned) and returns its name;
    ``t.boom`` fails for good."""
    seen: list[tuple[str, Any]] = []

    def step(payload: dict[str, Any], ctx: Any) -> str:
        results = ctx.dependency_results()
        seen.append((payload["name"], {str(k): v for k, v in results.items()}))
        return payload["name"]

    def boom(payload: dict[str, Any], ctx: Any) -> None:
        seen.append((payload.get("name", "boom"), None))
        raise PermanentError("boom")

    register("t.step", step)
    register("t.boom", boom, max_attempts=1)
    register("t.notify", lambda payload, ctx: seen.append(("notify", payload)))
    return seen


def names(seen: list[tuple[str, Any]]) -> list[str]:
    return [n for n, _ in seen]


def status(job: Any) -> str:
    return Job.objects.get(id=job.id).status


def test_a_dependent_waits_then_runs_once_after_its_dependencies(ran: list) -> None:
    a = enqueue("t.step", {"name": "a"})
    b = enqueue("t.step", {"name": "b"})
    c = enqueue("t.step", {"name": "c"}, depends_on=[a, str(b.id)])
    stored = Job.objects.get(id=c.id)
    assert (stored.status, stored.wait_token, stored.attempts) == ("waiting", DEPENDENCIES, 0)
    assert run_jobs() == 3
    assert names(ran) == ["a", "b", "c"]
    assert ran[-1][1] == {str(a.id): "a", str(b.id): "b"}  # ctx.dependency_results()
    assert status(c) == "completed"
    kinds = [e.type for e in get_job_events(c.id)]
    assert kinds == ["added", "resumed", "processing", "completed"]
    assert get_job_events(c.id)[1].data == {"reason": "dependencies"}


def test_a_dependency_already_completed_does_not_hold_the_job(ran: list) -> None:
    a = enqueue("t.step", {"name": "a"})
    run_jobs()
    b = enqueue("t.step", {"name": "b"}, depends_on=[a.id])
    assert status(b) == "pending"
    run_jobs()
    assert names(ran) == ["a", "b"]


def test_failure_cancels_dependents_all_the_way_down_unless_they_run_anyway(ran: list) -> None:
    a = enqueue("t.boom", {"name": "a"})
    b = enqueue("t.step", {"name": "b"}, depends_on=[a])
    c = enqueue("t.step", {"name": "c"}, depends_on=[b])
    d = enqueue("t.step", {"name": "d"}, depends_on=[a], on_dependency_failure="run")
    run_jobs()
    assert names(ran) == ["a", "d"]
    assert (status(a), status(b), status(c), status(d)) == (
        "failed", "cancelled", "cancelled", "completed")
    assert ran[-1][1] == {str(a.id): None}
    cancelled = get_job_events(b.id)[-1]
    assert cancelled.type == "cancelled"
    assert cancelled.data == {"reason": "dependency", "dependency": str(a.id),
                              "dependency_status": "failed"}


def test_retrying_the_failed_dependency_revives_its_cancelled_dependents(
        register: Callable, ran: list) -> None:
    a = enqueue("t.boom", {"name": "a"})
    b = enqueue("t.step", {"name": "b"}, depends_on=[a])
    c = enqueue("t.step", {"name": "c"}, depends_on=[b])
    run_jobs()
    assert (status(b), status(c)) == ("cancelled", "cancelled")
    register("t.boom", lambda payload, ctx: "fixed")  # the bug is fixed; retry from the admin
    assert retry_job(a.id)
    assert (status(b), status(c)) == ("waiting", "waiting")
    run_jobs()
    assert (status(a), status(b), status(c)) == ("completed", "completed", "completed")
    assert names(ran) == ["a", "b", "c"]


def test_cancelling_a_job_cancels_its_dependents(ran: list) -> None:
    a = enqueue("t.step", {"name": "a"}, delay=3600)
    b = enqueue("t.step", {"name": "b"}, depends_on=[a])
    c = enqueue("t.step", {"name": "c"}, depends_on=[b])
    assert cancel_job(a.id)
    assert (status(b), status(c)) == ("cancelled", "cancelled")
    assert run_jobs() == 0


def test_cancelling_a_waiting_dependent_leaves_its_dependency_alone(ran: list) -> None:
    a = enqueue("t.step", {"name": "a"})
    b = enqueue("t.step", {"name": "b"}, depends_on=[a])
    assert cancel_job(b.id)
    run_jobs()
    assert names(ran) == ["a"]
    assert status(b) == "cancelled"


def test_unknown_ids_and_bad_values_are_refused_before_anything_is_written(ran: list) -> None:
    missing = uuid.uuid4()
    with pytest.raises(ValueError, match=f"depends_on: no job with id {missing}"):
        enqueue("t.step", {"name": "x"}, depends_on=[missing])
    with pytest.raises(ValueError, match="'nope' is not a job id"):
        enqueue("t.step", {"name": "x"}, depends_on=["nope"])
    with pytest.raises(ValueError, match="must be a list of jobs or job ids"):
        enqueue("t.step", {"name": "x"}, depends_on="abc")
    with pytest.raises(ValueError, match="only enqueue_many items may give"):
        enqueue("t.step", {"name": "x"}, depends_on=[0])
    with pytest.raises(ValueError, match="on_dependency_failure must be one of 'cancel', 'run'"):
        enqueue("t.step", {"name": "x"}, depends_on=[], on_dependency_failure="skip")
    assert not Job.objects.exists() and not JobDependency.objects.exists()


def test_enqueue_many_names_items_by_position_and_refuses_cycles(ran: list) -> None:
    with pytest.raises(ValueError, match="cycle: item 0 -> item 2 -> item 1 -> item 0"):
        enqueue_many([{"type": "t.step", "payload": {"name": "a"}, "depends_on": [2]},
                      {"type": "t.step", "payload": {"name": "b"}, "depends_on": [0]},
                      {"type": "t.step", "payload": {"name": "c"}, "depends_on": [1]}])
    with pytest.raises(ValueError, match="cycle: item 1 -> item 1"):
        enqueue_many([{"type": "t.step", "payload": {"name": "a"}},
                      {"type": "t.step", "payload": {"name": "b"}, "depends_on": [1]}])
    with pytest.raises(ValueError, match="item 5 does not exist"):
        enqueue_many([{"type": "t.step", "payload": {"name": "a"}, "depends_on": [5]}])
    assert not Job.objects.exists()
    jobs = enqueue_many([{"type": "t.step", "payload": {"name": "last"}, "depends_on": [1, 2]},
                         {"type": "t.step", "payload": {"name": "first"}},
                         {"type": "t.step", "payload": {"name": "second"}, "depends_on": [1]}])
    run_jobs()
    assert names(ran) == ["first", "second", "last"]
    assert ran[-1][1] == {str(jobs[1].id): "first", str(jobs[2].id): "second"}


def test_dependencies_are_part_of_the_callers_transaction(ran: list) -> None:
    a = enqueue("t.step", {"name": "a"})
    with pytest.raises(RuntimeError), transaction.atomic():
        enqueue("t.step", {"name": "b"}, depends_on=[a])
        raise RuntimeError("rolled back")
    assert list(JobDependency.objects.all()) == []
    assert Job.objects.count() == 1


def test_a_dependency_finishing_before_the_enqueue_commits_is_not_missed(ran: list) -> None:
    """The dependency completes (committed by another connection's worker) after the enqueue
    read it as unfinished but before the enqueue commits: the settle after the commit makes
    the dependent due; no supervisor needed."""
    a = enqueue("t.step", {"name": "a"})
    with transaction.atomic():
        b = enqueue("t.step", {"name": "b"}, depends_on=[a])
        assert JobDependency.objects.get(job_id=b.id).resolved is False
        # What a worker's completion does, on this connection (SQLite has one writer): the
        # outcome is written and its settle finds no committed edge yet.
        Job.objects.filter(id=a.id).update(status="completed")
    assert status(b) == "pending"


def test_a_settle_that_never_ran_is_done_by_the_resumer(ran: list) -> None:
    a = enqueue("t.step", {"name": "a"})
    b = enqueue("t.step", {"name": "b"}, depends_on=[a])
    # a finished, and the process died before its settle: the edge is still open.
    Job.objects.filter(id=a.id).update(status="completed",
                                       updated_at=Job.objects.get(id=a.id).updated_at
                                       - 2 * STRANDED_AFTER)
    assert status(b) == "waiting"
    assert settle_stranded() == 1
    assert status(b) == "pending"
    assert settle_stranded() == 0


def test_a_batch_calls_back_once_with_its_counts(ran: list) -> None:
    batch = enqueue_batch([{"type": "t.step", "payload": {"name": f"j{i}"}} for i in range(3)]
                          + [{"type": "t.boom", "payload": {"name": "bad"}}],
                          on_complete=("t.notify", {"album": 7}),
                          on_success=sig("t.notify", {"all": "good"}), description="album 7")
    info = get_batch(batch.id)
    assert (info.status, info.total, info.pending, info.description) == (
        "running", 4, 4, "album 7")
    assert info.callback_ids == [batch.on_complete_job, batch.on_success_job]
    run_jobs()
    info = get_batch(batch.id)
    assert (info.status, info.pending, info.completed, info.failed) == ("finished", 0, 3, 1)
    assert info.finished_at is not None
    notified = [p for n, p in ran if n == "notify"]
    assert notified == [{"album": 7, "batch": {"id": str(batch.id), "total": 4, "pending": 0,
                                               "completed": 3, "failed": 1, "cancelled": 0}}]
    assert Job.objects.get(id=batch.on_success_job).status == "cancelled"


def test_an_empty_batch_calls_back_at_once(ran: list) -> None:
    batch = enqueue_batch([], on_complete=("t.notify", {}))
    run_jobs()
    assert next(p for n, p in ran if n == "notify")["batch"]["total"] == 0
    assert get_batch(batch.id).status == "finished"


def test_batch_input_is_checked_first(ran: list) -> None:
    with pytest.raises(ValueError, match="on_complete must be"):
        enqueue_batch([{"type": "t.step", "payload": {"name": "a"}}], on_complete="t.notify")
    with pytest.raises(ValueError, match="has an idempotency_key"):
        enqueue_batch([{"type": "t.step", "idempotency_key": "k"}])
    assert not Job.objects.exists()


def test_chain_group_and_chord(ran: list) -> None:
    jobs = chain(sig("t.step", {"name": "1"}), sig("t.step", {"name": "2"}),
                 sig("t.step", {"name": "3"})).enqueue()
    run_jobs()
    assert names(ran) == ["1", "2", "3"]
    assert ran[1][1] == {str(jobs[0].id): "1"}
    ran.clear()
    batch = group(sig("t.step", {"name": "x"}), sig("t.step", {"name": "y"})).enqueue()
    run_jobs()
    assert sorted(names(ran)) == ["x", "y"] and get_batch(batch.id).completed == 2
    ran.clear()
    batch = chord([sig("t.step", {"name": "x"}), sig("t.step", {"name": "y"})],
                  sig("t.step", {"name": "sum"})).enqueue()
    run_jobs()
    assert names(ran)[-1] == "sum"
    assert set(ran[-1][1].values()) == {"x", "y"}
    assert get_job(batch.on_success_job).status == "completed"


def test_old_batches_are_pruned_once_their_jobs_are(ran: list) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from django_edgejobs.models import Batch
    from django_edgejobs.runtime.maintenance.pruner import Pruner

    old = enqueue_batch([{"type": "t.step", "payload": {"name": "a"}}])
    kept = enqueue_batch([{"type": "t.step", "payload": {"name": "b"}}])
    run_jobs()
    long_ago = timezone.now() - timedelta(days=400)
    Batch.objects.filter(id__in=[old.id, kept.id]).update(created_at=long_ago)
    Job.objects.filter(batch_id=old.id).update(completed_at=long_ago)
    assert Pruner().run_once()["batches_pruned"] == 1  # its job was pruned first
    assert list(Batch.objects.values_list("id", flat=True)) == [kept.id]
    assert get_batch(kept.id).completed == 1


def test_a_dependency_expired_or_reclaimed_for_good_settles_its_dependents(ran: list) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from django_edgejobs.runtime.maintenance.expirer import cancel_expired_jobs
    from django_edgejobs.runtime.maintenance.rescuer import reclaim_stuck_jobs

    expiring = enqueue("t.step", {"name": "e"}, delay=60, expires=120)
    lost = enqueue("t.step", {"name": "l"}, max_attempts=1)
    after_expired = enqueue("t.step", {"name": "x"}, depends_on=[expiring])
    after_lost = enqueue("t.step", {"name": "y"}, depends_on=[lost],
                         on_dependency_failure="run")
    Job.objects.filter(id=expiring.id).update(expires_at=timezone.now() - timedelta(seconds=1))
    # ``lost`` was claimed by a worker that died on its last attempt.
    Job.objects.filter(id=lost.id).update(status="processing", attempts=1,
                                          lease_owner="gone", lease_token=uuid.uuid4())
    assert cancel_expired_jobs() == 1
    assert status(after_expired) == "cancelled"
    assert reclaim_stuck_jobs(worker_timeout=0) == 1
    assert (status(lost), status(after_lost)) == ("failed", "pending")


def test_a_deleted_dependency_no_longer_holds_its_dependents(ran: list) -> None:
    from datetime import timedelta

    a = enqueue("t.step", {"name": "a"}, delay=3600)
    b = enqueue("t.step", {"name": "b"}, depends_on=[a])
    Job.objects.filter(id=a.id).delete()  # e.g. the admin's delete action
    assert status(b) == "waiting"
    Job.objects.filter(id=b.id).update(updated_at=Job.objects.get(id=b.id).updated_at
                                       - STRANDED_AFTER - timedelta(seconds=1))
    assert settle_stranded() == 1
    assert status(b) == "pending"
    assert get_job_events(b.id)[-1].data == {"reason": "dependency deleted"}
    run_jobs()
    assert names(ran) == ["b"]


def test_a_payload_refused_with_on_invalid_fail_fails_at_once_and_settles(
        register: Callable, ran: list) -> None:
    from typing import TypedDict

    class Named(TypedDict):
        name: str

    register("t.strict", lambda payload, ctx: None, schema=Named, on_invalid="fail")
    a = enqueue("t.step", {"name": "a"})
    bad, after = enqueue_many([
        {"type": "t.strict", "payload": {"nom": 1}, "depends_on": [a]},
        {"type": "t.step", "payload": {"name": "c"}, "depends_on": [0]}])
    assert (bad.status, after.status) == ("failed", "cancelled")  # as returned, and stored
    assert (status(bad), status(after)) == ("failed", "cancelled")
    late = enqueue("t.step", {"name": "d"}, depends_on=[a])
    run_jobs()
    assert late.status == "waiting" and status(late) == "completed"
    done = enqueue("t.step", {"name": "e"}, depends_on=[a])
    assert done.status == "pending"  # what enqueue returns is what the settle made of it


def test_a_chord_body_may_run_anyway_and_callbacks_are_checked(ran: list) -> None:
    batch = chord([sig("t.boom", {"name": "x"}), sig("t.step", {"name": "y"})],
                  sig("t.notify", {"sum": 1}, on_dependency_failure="run")).enqueue()
    assert batch.on_success_job is None and batch.on_complete_job is not None
    run_jobs()
    assert [p["sum"] for n, p in ran if n == "notify"] == [1]
    with pytest.raises(ValueError, match="unknown key"):
        enqueue_batch([], on_complete={"type": "t.notify", "dely": 3})
    with pytest.raises(ValueError, match="takes no idempotency_key of its own"):
        enqueue_batch([], on_complete={"type": "t.notify", "idempotency_key": "k"})
    with pytest.raises(ValueError, match="takes no depends_on of its own"):
        enqueue_batch([], on_success={"type": "t.notify", "depends_on": [0]})


def test_a_force_kill_handler_reads_its_dependencies_results(ran: list) -> None:
    from django_edgejobs.runtime.worker import Worker

    a = enqueue("t.step", {"name": "a"})
    run_jobs()
    child = enqueue("qa.spin", {"mode": "deps"}, depends_on=[a])
    Worker(["default"], worker_id="fk").run_once()
    assert get_job(child.id).result == {"deps": {str(a.id): "a"}}
