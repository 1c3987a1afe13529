"""``pause_queue``, ``resume_queue``, ``list_queues`` and ``manage.py edgejobs
queues|pause|resume``: persisted state, what a worker claims, bad input named."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from django_edgejobs import (
    QueueInfo,
    enqueue,
    get_job,
    list_queues,
    pause_queue,
    resume_queue,
)
from django_edgejobs.models import Queue
from django_edgejobs.runtime.worker import Worker
from django_edgejobs.services.stats import queue_stats
from django_edgejobs.testing import run_jobs

pytestmark = pytest.mark.django_db


def test_pause_and_resume_say_whether_they_changed_anything():
    assert pause_queue("mail") is True
    row = Queue.objects.get(name="mail")
    assert row.paused and row.paused_at is not None
    assert pause_queue("mail") is False
    assert Queue.objects.get(name="mail").paused_at == row.paused_at  # the pause's start
    assert resume_queue("mail") is True
    assert resume_queue("mail") is False
    assert resume_queue("never-paused") is False
    assert not Queue.objects.filter(name="never-paused").exists()
    row = Queue.objects.get(name="mail")
    assert not row.paused and row.paused_at is None


def test_a_worker_claims_nothing_of_a_paused_queue_and_everything_after_resume(register):
    ran: list[str] = []
    register("t.q", lambda payload, ctx: ran.append(payload["q"]))
    pause_queue("mail")
    held = enqueue("t.q", {"q": "mail"}, queue="mail")  # still accepted
    other = enqueue("t.q", {"q": "default"})
    worker = Worker(["mail", "default"], concurrency=1, batch_size=10)
    assert worker.run_once() == 1
    assert worker.run_once() == 0
    assert ran == ["default"] and get_job(other.id).status == "completed"
    job = get_job(held.id)
    assert (job.status, job.attempts) == ("pending", 0)
    assert run_jobs() == 0  # the test helper skips paused queues too
    resume_queue("mail")
    assert worker.run_once() == 1
    assert ran == ["default", "mail"] and get_job(held.id).status == "completed"


def test_list_queues_gives_each_queue_with_its_numbers(register):
    register("t.q", lambda payload, ctx: None)
    enqueue("t.q", queue="mail", run_at=timezone.now() - timedelta(seconds=30))
    enqueue("t.q", queue="mail", run_at=timezone.now() + timedelta(hours=1))
    enqueue("t.q", queue="default")
    pause_queue("mail")
    pause_queue("empty")
    pause_queue("was-paused")
    resume_queue("was-paused")
    queues = {q.name: q for q in list_queues()}
    assert list(queues) == ["default", "empty", "mail", "was-paused"]
    mail = queues["mail"]
    assert isinstance(mail, QueueInfo)
    assert (mail.paused, mail.pending, mail.due, mail.processing, mail.failed) == (
        True, 2, 1, 0, 0)
    assert mail.oldest_due_age is not None and mail.oldest_due_age >= 29
    assert mail.paused_at is not None
    assert queues["default"].paused is False and queues["default"].pending == 1
    assert queues["empty"] == QueueInfo(name="empty", paused=True, pending=0, due=0,
                                        processing=0, failed=0, oldest_due_age=None,
                                        paused_at=queues["empty"].paused_at)
    assert queues["was-paused"].paused is False
    stats = queue_stats()
    assert stats["queues"]["mail"]["paused"] is True and stats["queues"]["default"]["paused"] \
        is False
    assert "paused" not in stats["totals"]


@pytest.mark.parametrize(("queue", "message"), [
    ("", "pause_queue: queue must be a non-empty string, got ''"),
    (None, "pause_queue: queue must be a non-empty string, got None"),
    ("x" * 101, "pause_queue: queue name is longer than 100 characters"),
    ("a\x00b", "pause_queue: queue cannot contain a NUL character"),
])
def test_bad_queue_names_are_refused_before_anything_is_written(queue, message):
    with pytest.raises(ValueError, match=message.replace("'", "'").split(",")[0]):
        pause_queue(queue)
    with pytest.raises(ValueError, match="resume_queue"):
        resume_queue(queue)
    assert not Queue.objects.exists()


def edgejobs(*args: str) -> str:
    out = io.StringIO()
    call_command("edgejobs", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_the_command_pauses_lists_and_resumes(register):
    register("t.q", lambda payload, ctx: None)
    enqueue("t.q", queue="mail")
    assert edgejobs("pause", "mail") == "Queue 'mail' paused.\n"
    assert edgejobs("pause", "mail") == "Queue 'mail' was already paused.\n"
    table = edgejobs("queues").splitlines()
    assert table[0].split() == ["QUEUE", "STATE", "PENDING", "DUE", "PROCESSING", "FAILED",
                                "OLDEST", "DUE"]
    assert table[1].split()[:4] == ["mail", "paused", "1", "1"]
    data = json.loads(edgejobs("queues", "--json"))
    assert [(q["name"], q["paused"], q["pending"]) for q in data] == [("mail", True, 1)]
    assert data[0]["paused_at"] is not None
    assert json.loads(edgejobs("resume", "mail", "--json")) == {"queue": "mail",
                                                                "resumed": True}
    assert edgejobs("resume", "mail") == "Queue 'mail' was already running.\n"
    with pytest.raises(CommandError, match="queue must be a non-empty string"):
        edgejobs("pause", "")
