"""docs/howto/human-approval.md, step by step: token → emailed signed link → resume."""

from __future__ import annotations

import json
import re

import pytest
from django.core import mail

from django_edgejobs import enqueue, get_job, get_job_events
from django_edgejobs.runtime.worker import Worker

pytestmark = pytest.mark.django_db


def work() -> int:
    return Worker(["default"], worker_id="howto").run_once()


def emailed_link(settings) -> str:
    (message,) = mail.outbox
    match = re.search(re.escape(settings.SHOP_BASE_URL) + r"(\S+)", message.body)
    assert match, message.body
    return match.group(1)


def test_approval_by_email_link(client, settings):
    # 3. Enqueue it; a worker runs it: one email, the job waits without an attempt.
    job = enqueue("shop.refund_approval", {"order_id": 42, "approver": "boss@example.com"})
    assert work() == 1
    assert get_job(job.id).status == "waiting"
    assert mail.outbox[0].to == ["boss@example.com"]
    assert mail.outbox[0].subject == "Approve refund of order 42?"
    link = emailed_link(settings)

    # A link preview (GET) changes nothing.
    assert client.get(link).status_code == 405
    assert get_job(job.id).status == "waiting"

    # 4. The person clicks: the job resumes and completes; the email is not sent again.
    answer = client.post(link, data=json.dumps({"approved": True}),
                         content_type="application/json")
    assert answer.status_code == 200 and answer.json()["ok"] is True
    assert get_job(job.id).status == "pending"
    assert work() == 1
    job = get_job(job.id)
    assert job.status == "completed"
    assert job.result == {"refunded": True, "reason": None}
    assert job.attempts == 1
    assert len(mail.outbox) == 1
    assert [e.type for e in get_job_events(job.id)] == [
        "added", "processing", "waiting", "resumed", "processing", "completed"]

    # A second click: 409.
    again = client.post(link, data="{}", content_type="application/json")
    assert again.status_code == 409 and again.json()["error"] == "already_used"


def test_nobody_answers(client, settings):
    from django.db.models.functions import Now

    from django_edgejobs import expire_timed_out_tokens
    from django_edgejobs.models import WaitToken

    job = enqueue("shop.refund_approval", {"order_id": 7, "approver": "boss@example.com",
                                           "timeout": 3600})
    work()
    link = emailed_link(settings)
    # 5. The timeout passes (travel in time): the supervisor expires the token.
    WaitToken.objects.update(timeout_at=Now())
    assert expire_timed_out_tokens() == 1
    work()
    job = get_job(job.id)
    assert job.status == "completed"
    assert job.result["refunded"] is False and "timed out" in job.result["reason"]
    assert client.post(link, data="{}", content_type="application/json").status_code == 410
