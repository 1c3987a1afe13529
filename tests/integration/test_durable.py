"""Durable execution: steps, waits, wait tokens, prolong/on_timeout, the signed callback."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest
from django.db import connections, transaction
from django.db.models.functions import Now
from django.urls import reverse
from django.utils import timezone

from django_edgejobs import (
    cancel_job,
    complete_token,
    enqueue,
    expire_timed_out_tokens,
    get_job,
    get_job_events,
    get_token,
)
from django_edgejobs.models import Job, WaitToken
from django_edgejobs.models.token import read_signed
from django_edgejobs.runtime.supervisor import Supervisor
from django_edgejobs.runtime.worker import Worker
from django_edgejobs.store import get_store

pytestmark = pytest.mark.django_db


def run() -> int:
    return Worker(["default"], worker_id="durable-worker").run_once()


def kinds(job) -> list[str]:
    return [e.type for e in get_job_events(job.id)]


def make_due(job) -> None:
    """Travel past the job's waits: its run time and the wait times its steps recorded."""
    past = timezone.now() - timedelta(seconds=1)
    steps = get_job(job.id).steps
    steps.update({k: past.isoformat() for k in steps if k.startswith("edgejobs:wait:")})
    Job.objects.filter(id=job.id).update(run_at=past, steps=steps)


def test_steps_run_once_across_a_wait_that_uses_no_attempt(register):
    calls = {"charge": 0, "email": 0}

    def handler(payload, ctx):
        charged = ctx.run("charge", lambda: calls.__setitem__("charge", calls["charge"] + 1)
                          or {"charge_id": "ch_1"})
        ctx.wait_for(hours=1)
        emailed = ctx.run("email", lambda: calls.__setitem__("email", calls["email"] + 1)
                          or "sent")
        return {"charged": charged, "emailed": emailed}

    register("t.flow", handler)
    job = enqueue("t.flow", max_attempts=1)
    run()
    job = get_job(job.id)
    assert job.status == "waiting" and job.attempts == 0
    assert job.lease_token is None and job.lease_owner == ""
    assert job.run_at > timezone.now() + timedelta(minutes=59)
    assert job.steps["charge"] == {"charge_id": "ch_1"}
    assert run() == 0  # a waiting job is not claimed
    assert Supervisor().run_once()["resumed"] == 0  # not due yet
    make_due(job)
    assert Supervisor().run_once()["resumed"] == 1
    assert get_job(job.id).status == "pending"
    run()
    job = get_job(job.id)
    assert job.status == "completed", job.last_error
    assert job.result == {"charged": {"charge_id": "ch_1"}, "emailed": "sent"}
    assert job.attempts == 1  # max_attempts=1 and still completed: waiting used no attempt
    assert calls == {"charge": 1, "email": 1}
    assert kinds(job) == ["added", "processing", "waiting", "resumed", "processing",
                          "completed"]


def test_steps_replay_after_a_failed_attempt(register):
    calls = []

    def handler(payload, ctx):
        ctx.run("one", lambda: calls.append("one") or 1)
        if ctx.attempt == 1:
            raise RuntimeError("flaky")
        return ctx.run("two", lambda: calls.append("two") or 2)

    register("t.retry", handler)
    job = enqueue("t.retry", retry_delay=0)
    run()
    make_due(job)
    run()
    assert get_job(job.id).status == "completed"
    assert calls == ["one", "two"]


def test_duplicate_step_names_fail_clearly(register):
    def handler(payload, ctx):
        ctx.run("same", lambda: 1)
        ctx.run("same", lambda: 2)

    register("t.dup", handler)
    job = enqueue("t.dup", max_attempts=1)
    run()
    job = get_job(job.id)
    assert job.status == "failed"
    assert "step 'same' ran twice in one invocation of 't.dup'" in job.last_error


def test_wait_until_past_time_continues_at_once(register):
    def handler(payload, ctx):
        ctx.wait_until(timezone.now() - timedelta(seconds=5))
        return "went on"

    register("t.past", handler)
    job = enqueue("t.past")
    run()
    assert get_job(job.id).result == "went on"


def test_wait_validation(register):
    def handler(payload, ctx):
        ctx.wait_until(timezone.now().replace(tzinfo=None))

    register("t.naive", handler)
    job = enqueue("t.naive", max_attempts=1)
    run()
    assert "wait_until needs a timezone-aware datetime" in get_job(job.id).last_error


def approval_handler(payload, ctx):
    token = ctx.create_token(timeout=payload.get("timeout"), tags=["approval"])
    ctx.run("notify", lambda: {"token": token.id})
    result = ctx.wait_for_token(token.id)
    return {"ok": result.ok, "output": result.output, "error": result.error,
            "token": token.id}


def test_token_completion_resumes_the_job_once(register):
    register("t.approve", approval_handler)
    job = enqueue("t.approve", max_attempts=1)
    run()
    job = get_job(job.id)
    token_id = job.steps["notify"]["token"]
    assert job.status == "waiting" and job.wait_token == token_id
    token = get_token(token_id)
    assert token.status == "waiting" and token.tags == ["approval"] and token.job_id == job.id
    assert complete_token(token_id, {"approved": True}) is True
    assert complete_token(token_id, {"approved": False}) is False
    assert get_job(job.id).status == "pending"
    run()
    job = get_job(job.id)
    assert job.status == "completed"
    assert job.result == {"ok": True, "output": {"approved": True}, "error": None,
                          "token": token_id}
    assert WaitToken.objects.count() == 1  # re-invocation got the same token
    assert kinds(job).count("resumed") == 1


def test_a_token_completed_before_the_wait_is_not_lost(register):
    def handler(payload, ctx):
        token = ctx.create_token()
        complete_token(token.id, "early")  # e.g. a webhook answered at once
        return ctx.wait_for_token(token.id).output

    register("t.early", handler)
    job = enqueue("t.early")
    run()
    assert get_job(job.id).result == "early"


def test_a_token_completed_between_the_check_and_the_wait_wakes_the_job(register, monkeypatch):
    """The handler saw the token waiting; it was completed before the job went waiting."""
    store = get_store()
    real_check = store.check_token

    def stale_check(token_id):
        token = real_check(token_id)
        complete_token(token_id, "raced")
        return token  # still says waiting

    def handler(payload, ctx):
        token = ctx.create_token()
        return ctx.wait_for_token(token.id).output

    register("t.race", handler)
    job = enqueue("t.race")
    monkeypatch.setattr(store, "check_token", stale_check)
    run()
    monkeypatch.setattr(store, "check_token", real_check)
    assert get_job(job.id).status == "pending"  # woken at once, not stuck waiting
    run()
    assert get_job(job.id).result == "raced"


def test_token_timeout_gives_ok_false(register):
    register("t.approve", approval_handler)
    job = enqueue("t.approve", {"timeout": 3600})
    run()
    token = WaitToken.objects.get()
    assert token.timeout_at > timezone.now() + timedelta(minutes=59)
    assert expire_timed_out_tokens() == 0
    WaitToken.objects.update(timeout_at=Now())
    assert expire_timed_out_tokens() == 1
    assert get_token(token.id).status == "timed_out"
    assert complete_token(token.id, "too late") is False
    run()
    result = get_job(job.id).result
    assert result["ok"] is False and result["error"] == f"token {token.id} timed out"


def test_complete_token_joins_the_callers_transaction(register):
    register("t.approve", approval_handler)
    job = enqueue("t.approve")
    run()
    token = WaitToken.objects.get()
    with pytest.raises(RuntimeError), transaction.atomic():
        assert complete_token(token.id, "yes") is True
        raise RuntimeError("rolled back")
    assert get_token(token.id).status == "waiting"
    assert get_job(job.id).status == "waiting"


def test_a_cancelled_jobs_token_cannot_resume_it(register):
    register("t.approve", approval_handler)
    job = enqueue("t.approve")
    run()
    token = WaitToken.objects.get()
    assert cancel_job(job.id) is True
    assert complete_token(token.id, "yes") is False
    assert get_job(job.id).status == "cancelled"


def test_on_timeout_can_extend_the_deadline_once(register):
    extended = []

    def handler(payload, ctx):
        ctx.on_timeout(lambda: None if extended else extended.append(1) or 30)
        cancelled = ctx.cancelled.wait(0.6)  # past the 0.2 s timeout, within the extension
        return {"cancelled": cancelled}

    register("t.long", handler)
    job = enqueue("t.long", timeout=0.2, max_attempts=1)
    run()
    job = get_job(job.id)
    assert job.status == "completed", job.last_error
    assert job.result == {"cancelled": False}
    assert extended == [1]
    assert "prolonged" in kinds(job)


def test_prolong_pushes_the_deadline(register):
    def handler(payload, ctx):
        ctx.prolong(30)
        return {"cancelled": ctx.cancelled.wait(0.5)}

    register("t.prolong", handler)
    job = enqueue("t.prolong", timeout=0.2, max_attempts=1)
    run()
    job = get_job(job.id)
    assert job.result == {"cancelled": False}
    prolonged = [e for e in get_job_events(job.id) if e.type == "prolonged"]
    assert prolonged[0].data == {"attempt": 1, "seconds": 30.0}


def test_async_handler_can_use_steps_and_progress(register):
    async def handler(payload, ctx):
        ctx.set_progress(50)
        return ctx.run("fetch", lambda: {"rows": 3})

    register("t.async", handler)
    job = enqueue("t.async")
    run()
    job = get_job(job.id)
    assert job.status == "completed", job.last_error
    assert job.result == {"rows": 3} and job.progress == 50


# -- the signed callback URL --------------------------------------------------------------


def waiting_token(register, timeout=None):
    register("t.approve", approval_handler)
    job = enqueue("t.approve", {"timeout": timeout})
    run()
    return job, WaitToken.objects.get()


def test_signed_url_completes_the_token_once(register, client):
    job, token = waiting_token(register, timeout=3600)
    url = token.callback_path()
    # The signature embeds the time it was made: compare what the URL carries, not its text.
    signed = url.rstrip("/").split("/")[-2]
    assert url == reverse("django_edgejobs:token-callback", args=[signed])
    assert read_signed(signed) == token.id
    answer = client.post(url, data=json.dumps({"approved": True}),
                         content_type="application/json")
    assert answer.status_code == 200 and answer.json() == {"ok": True, "token": token.id}
    assert get_token(token.id).output == {"approved": True}
    again = client.post(url, data="{}", content_type="application/json")
    assert again.status_code == 409 and again.json()["error"] == "already_used"
    assert get_job(job.id).status == "pending"


def test_signed_url_refuses_tampering_expiry_bad_json_size_and_get(register, client, settings):
    _job, token = waiting_token(register, timeout=3600)
    url = token.callback_path()
    signed = url.rstrip("/").split("/")[-2]
    tampered = url.replace(signed, signed[:-2] + ("AA" if signed[-2:] != "AA" else "BB"))
    answer = client.post(tampered, data="{}", content_type="application/json")
    assert answer.status_code == 400 and answer.json()["error"] == "bad_signature"
    assert client.get(url).status_code == 405
    answer = client.post(url, data="{not json", content_type="application/json")
    assert answer.status_code == 400 and answer.json()["error"] == "bad_json"
    settings.EDGEJOBS = {**settings.EDGEJOBS, "TOKEN_CALLBACK_MAX_BYTES": 10}
    answer = client.post(url, data=json.dumps({"x": "y" * 100}),
                         content_type="application/json")
    assert answer.status_code == 413
    token.timeout_at = timezone.now() - timedelta(seconds=1)
    expired_url = token.callback_path()
    answer = client.post(expired_url, data="{}", content_type="application/json")
    assert answer.status_code == 410 and answer.json()["error"] == "expired"
    assert get_token(token.id).status == "waiting"


def test_the_callback_is_csrf_exempt_but_nothing_else_is(register):
    from django.test import Client

    csrf_client = Client(enforce_csrf_checks=True)
    _job, token = waiting_token(register)
    answer = csrf_client.post(token.callback_path(), data="null",
                              content_type="application/json")
    assert answer.status_code == 200
    assert csrf_client.post("/admin/login/", {"username": "x"}).status_code == 403


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_completions_resume_the_job_once(register):
    register("t.approve", approval_handler)
    job = enqueue("t.approve")
    run()
    token = WaitToken.objects.get()
    results = []
    barrier = threading.Barrier(2)

    def complete(n):
        try:
            barrier.wait(5)
            results.append(complete_token(token.id, {"by": n}))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=complete, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results) == [False, True]
    assert kinds(job).count("resumed") == 1
    assert get_job(job.id).status == "pending"


# -- force_kill ---------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_force_kill_stops_a_busy_loop_at_its_deadline():
    """qa.spin (testproject/qa/jobs.py) is declared with force_kill=True."""
    import os

    job = enqueue("qa.spin", {"mode": "spin", "progress": 30}, timeout=2, max_attempts=1)
    started = timezone.now()
    Worker(["default"], worker_id="fk").run_once()
    job = get_job(job.id)
    assert job.status == "failed"
    assert job.last_error == "TimeoutError: attempt 1 exceeded its timeout of 2s"
    assert job.progress == 30  # set_progress went through the parent
    assert timezone.now() - started < timedelta(seconds=30)
    done = enqueue("qa.spin", {})
    Worker(["default"], worker_id="fk").run_once()
    assert get_job(done.id).result["pid"] != os.getpid()  # it really ran elsewhere


@pytest.mark.django_db(transaction=True)
def test_force_kill_reports_errors_exits_and_refuses_steps():
    raised = enqueue("qa.spin", {"mode": "raise"}, max_attempts=1)
    exited = enqueue("qa.spin", {"mode": "exit"}, max_attempts=1)
    step = enqueue("qa.spin", {"mode": "step"}, max_attempts=1)
    worker = Worker(["default"], worker_id="fk", batch_size=5)
    while worker.run_once():
        pass
    raised, exited, step = get_job(raised.id), get_job(exited.id), get_job(step.id)
    assert raised.last_error == "ValueError: from the child"
    assert 'raise ValueError("from the child")' in raised.error_history[0]["traceback"]
    assert raised.error_history[0]["exception"] == "builtins.ValueError"
    assert exited.last_error == ("ChildProcessError: the handler's process exited with code 3 "
                                 "before reporting a result")
    assert step.status == "failed"
    assert "not available in force_kill handlers" in step.last_error


# -- edge cases found in review -----------------------------------------------------------


def test_a_broad_except_in_the_handler_does_not_swallow_a_wait(register):
    def handler(payload, ctx):
        try:
            ctx.wait_for(hours=1)
        except Exception:
            return "swallowed"
        return "went on"

    register("t.broad", handler)
    job = enqueue("t.broad")
    run()
    assert get_job(job.id).status == "waiting"


def test_prolong_without_a_timeout_and_a_raising_on_timeout(register):
    def handler(payload, ctx):
        ctx.on_timeout(lambda: 1 / 0)   # raises: logged, no extension
        ctx.prolong(0.2)                # gives a job without a timeout a deadline
        return {"cancelled": ctx.cancelled.wait(5)}

    register("t.deadline", handler)
    job = enqueue("t.deadline", max_attempts=1)
    run()
    job = get_job(job.id)
    assert job.status == "failed"
    assert job.last_error == "TimeoutError: attempt 1 exceeded its deadline"


def test_complete_token_after_its_timeout_is_refused(register):
    register("t.approve", approval_handler)
    job = enqueue("t.approve", {"timeout": 3600})
    run()
    token = WaitToken.objects.get()
    WaitToken.objects.update(timeout_at=Now())
    assert complete_token(token.id, "late") is False
    assert get_token(token.id).status == "timed_out"
    assert get_job(job.id).status == "pending"  # woken to see the timeout


def test_token_tags_must_be_a_list_and_step_errors_name_the_step(register):
    def bad_tags(payload, ctx):
        ctx.create_token(tags="abc")

    def bad_step(payload, ctx):
        ctx.run("fetch", lambda: {1, 2})

    register("t.tags", bad_tags)
    register("t.step", bad_step)
    tags, step = enqueue("t.tags", max_attempts=1), enqueue("t.step", max_attempts=1)
    Worker(["default"], worker_id="w", batch_size=2).run_once()
    assert "tags must be a list of strings" in get_job(tags.id).last_error
    assert "the result of step 'fetch': result is a set" in get_job(step.id).last_error
