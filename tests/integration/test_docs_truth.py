"""Behaviour the documentation states, checked where no other test pins it down.

- docs/howto/retries-and-failures.md and docs/reference/api.md: a raising ``on_timeout``
  callback, or ``ctx.prolong(seconds)`` on a job without a timeout, does not stop ``runworker``
  (the threaded loop; tests/integration/test_durable.py covers ``Worker.run_once``).
- docs/reference/api.md: ``expire_timed_out_tokens()`` expires every due token in one call, not
  500; ``Wait`` passes through ``except Exception`` but not through ``except BaseException``.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.utils import timezone

from django_edgejobs import enqueue, expire_timed_out_tokens, get_job
from django_edgejobs.exceptions import ControlFlow
from django_edgejobs.models import Job, WaitToken
from django_edgejobs.runtime.worker import Worker
from tests.conftest import wait_for


class Background:
    """Run ``worker.run()`` on a thread; stop and join on exit."""

    def __init__(self, worker: Worker):
        self.worker = worker
        self.code: int | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self.code = self.worker.run()

    def __enter__(self) -> Background:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.worker.request_stop()
        self.thread.join(30)
        assert not self.thread.is_alive(), "worker did not stop"


def boom() -> float:
    raise RuntimeError("on_timeout callback failed")


@pytest.mark.django_db(transaction=True)
def test_runworker_survives_a_raising_on_timeout_and_prolong_without_a_timeout(register):
    saw_cancel: dict[str, bool] = {}

    def no_timeout(payload, ctx):
        ctx.on_timeout(boom)
        ctx.prolong(0.2)  # a deadline for a job that has no timeout
        saw_cancel["no_timeout"] = ctx.cancelled.wait(10)

    def with_timeout(payload, ctx):
        ctx.on_timeout(boom)
        saw_cancel["with_timeout"] = ctx.cancelled.wait(10)

    register("t.no_timeout", no_timeout)
    register("t.with_timeout", with_timeout)
    register("t.after", lambda payload, ctx: "still running")
    first = enqueue("t.no_timeout", max_attempts=1)
    second = enqueue("t.with_timeout", timeout=0.2, max_attempts=1)
    background = Background(Worker(["default"], concurrency=2, poll_interval=0.05))
    with background:
        for job in (first, second):
            wait_for(lambda job=job: get_job(job.id).status == "failed", timeout=15,
                     message=f"{job.type} timed out")
        assert background.thread.is_alive()
        after = enqueue("t.after")
        wait_for(lambda: get_job(after.id).status == "completed", timeout=15,
                 message="the worker still runs jobs")
    assert background.code == 0
    # The deadlines were enforced while the handlers ran, not noticed after they returned.
    assert saw_cancel == {"no_timeout": True, "with_timeout": True}
    assert get_job(first.id).last_error == "TimeoutError: attempt 1 exceeded its deadline"
    assert get_job(second.id).last_error == "TimeoutError: attempt 1 exceeded its timeout of 0.2s"
    assert get_job(after.id).result == "still running"


@pytest.mark.django_db
def test_expire_timed_out_tokens_expires_every_due_token_in_one_call(register):
    register("t.holder")
    job = enqueue("t.holder", delay=3600)
    past = timezone.now() - timedelta(minutes=1)
    WaitToken.objects.bulk_create([WaitToken(job_id=job.id, timeout_at=past) for _ in range(650)])
    later = WaitToken.objects.create(job_id=job.id, timeout_at=past + timedelta(hours=2))
    assert expire_timed_out_tokens() == 650
    assert WaitToken.objects.filter(status=WaitToken.Status.TIMED_OUT).count() == 650
    assert WaitToken.objects.get(id=later.id).status == WaitToken.Status.WAITING
    assert expire_timed_out_tokens() == 0


@pytest.mark.django_db
def test_wait_passes_except_exception_but_not_except_base_exception(register):
    def broad(payload, ctx):
        try:
            ctx.wait_for(hours=1)
        except Exception:
            return "caught by except Exception"
        return "went on"

    def bare(payload, ctx):
        try:
            ctx.wait_for(hours=1)
        except BaseException:
            return "caught by except BaseException"
        return "went on"

    def reraised(payload, ctx):
        try:
            ctx.wait_for(hours=1)
        except ControlFlow:
            raise
        except BaseException:
            return "caught by except BaseException"
        return "went on"

    for name, fn in (("t.broad", broad), ("t.bare", bare), ("t.reraised", reraised)):
        register(name, fn)
    jobs = {name: enqueue(name) for name in ("t.broad", "t.bare", "t.reraised")}
    Worker(["default"], worker_id="docs-truth", batch_size=3).run_once()
    assert get_job(jobs["t.broad"].id).status == "waiting"
    bare_job = get_job(jobs["t.bare"].id)
    assert (bare_job.status, bare_job.result) == ("completed", "caught by except BaseException")
    assert get_job(jobs["t.reraised"].id).status == "waiting"
    assert Job.objects.filter(status="waiting").count() == 2
