"""``manage.py edgejobs``: list, show, retry, cancel, stats, purge; tables and ``--json``."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.db.models.functions import Now
from django.utils import timezone

from django_edgejobs import enqueue, get_job
from django_edgejobs.models import Job, JobStatus
from django_edgejobs.models import Worker as WorkerRow
from django_edgejobs.runtime.worker import Worker
from django_edgejobs.services.export import DETAIL_KEYS, JOB_KEYS

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]


def edgejobs(*args: str) -> str:
    out, err = io.StringIO(), io.StringIO()
    call_command("edgejobs", *args, stdout=out, stderr=err)
    return out.getvalue()


def as_json(*args: str) -> Any:
    return json.loads(edgejobs(*args, "--json"))


def fails(*args: str) -> str:
    with pytest.raises(CommandError) as exc:
        edgejobs(*args)
    return str(exc.value)


@pytest.fixture
def jobs(register: Callable) -> dict[str, Job]:
    """One job in each interesting state."""

    def boom(payload: Any, ctx: Any) -> None:
        raise ValueError("the printer is on fire")

    register("t.ok", lambda payload, ctx: {"printed": payload.get("n")})
    register("t.boom", boom)
    register("t.later", queue="reports")
    done = enqueue("t.ok", {"n": 1}, tags=["a", "b"])
    failed = enqueue("t.boom", {"n": 2}, max_attempts=1, tags=["a"])
    Worker(["default"], worker_id="test-ops").run_once()
    later = enqueue("t.later", {"n": 3}, delay=3600, priority=5, tags=["b"])
    due = enqueue("t.ok", {"n": 4}, idempotency_key="due-4")
    return {name: get_job(j.id) for name, j in
            {"done": done, "failed": failed, "later": later, "due": due}.items()}


# -- list ---------------------------------------------------------------------------------


def test_list_prints_a_table_newest_first(jobs: dict[str, Job]) -> None:
    lines = edgejobs("list").splitlines()
    assert lines[0].split() == ["ID", "TYPE", "QUEUE", "STATUS", "TRIES", "PRIO", "RUN", "AT",
                                "LAST", "ERROR"]
    assert [line.split()[0] for line in lines[1:]] == [
        str(jobs[n].id) for n in ("due", "later", "failed", "done")]
    failed = next(line for line in lines if line.startswith(str(jobs["failed"].id)))
    assert failed.split()[1:5] == ["t.boom", "default", "failed", "1/1"]
    assert failed.endswith("ValueError: the printer is on fire")


def test_list_json_has_the_documented_keys(jobs: dict[str, Job]) -> None:
    got = as_json("list")
    assert [tuple(item) for item in got] == [JOB_KEYS] * 4
    later = next(item for item in got if item["id"] == str(jobs["later"].id))
    assert later == {
        "id": str(jobs["later"].id), "type": "t.later", "queue": "reports",
        "status": "pending", "priority": 5, "attempts": 0, "max_attempts": 3,
        "run_at": jobs["later"].run_at.isoformat(), "expires_at": None,
        "created_at": jobs["later"].created_at.isoformat(), "started_at": None,
        "completed_at": None, "tags": ["b"], "idempotency_key": None, "progress": None,
        "last_error": "",
    }


@pytest.mark.parametrize(("args", "expected"), [
    (("--status", "failed"), ["failed"]),
    (("--status", "completed", "--status", "failed"), ["failed", "done"]),
    (("--queue", "reports"), ["later"]),
    (("--type", "t.ok"), ["due", "done"]),
    (("--tag", "a"), ["failed", "done"]),
    (("--tag", "a", "--tag", "b"), ["done"]),
    (("--tag", "a", "--tag", "b", "--tag-mode", "any"), ["later", "failed", "done"]),
    (("--tag", "a", "--tag-mode", "none"), ["due", "later"]),
    (("--limit", "2"), ["due", "later"]),
    (("--limit", "0"), ["due", "later", "failed", "done"]),
    (("--type", "t.nothing"), []),
])
def test_list_filters(jobs: dict[str, Job], args: tuple[str, ...], expected: list[str]) -> None:
    assert [item["id"] for item in as_json("list", *args)] == [
        str(jobs[n].id) for n in expected]


def test_list_without_jobs_says_so() -> None:
    assert edgejobs("list") == "No jobs.\n"
    assert as_json("list") == []


def test_an_unknown_status_is_a_command_error() -> None:
    assert fails("list", "--status", "finished") == (
        "unknown status 'finished'; one of pending, waiting, processing, completed, failed, "
        "cancelled")


def test_bad_numbers_are_command_errors() -> None:
    assert fails("list", "--limit", "-1").endswith(
        "argument --limit: must be an integer >= 0, got '-1'")
    assert fails("list", "--limit", "many").endswith(
        "argument --limit: must be an integer >= 0, got 'many'")
    assert fails("purge", "--days", "nan").endswith(
        "argument --days: must be a number >= 0, got 'nan'")


# -- show ---------------------------------------------------------------------------------


def test_show_prints_the_job_its_errors_and_events(jobs: dict[str, Job]) -> None:
    text = edgejobs("show", str(jobs["failed"].id))
    assert f"id:              {jobs['failed'].id}" in text
    assert "status:          failed" in text
    assert 'payload:\n  {\n    "n": 2\n  }' in text
    assert "error history (1):\n  attempt 1 at " in text
    assert ": ValueError: the printer is on fire\n    Traceback (most recent call last):" in text
    assert "tags:            a\n" in text
    events = text[text.index("events (3):"):].splitlines()[1:]
    assert [line.split()[1] for line in events] == ["added", "processing", "failed"]
    assert events[2].endswith(' failed {"attempt": 1, "error": "ValueError: the printer is on '
                              'fire", "permanent": false}')


def test_show_json_has_the_documented_keys(jobs: dict[str, Job]) -> None:
    got = as_json("show", str(jobs["failed"].id))
    assert tuple(got) == JOB_KEYS + DETAIL_KEYS
    assert (got["payload"], got["result"], got["worker"]) == ({"n": 2}, None, None)
    assert [e["type"] for e in got["events"]] == ["added", "processing", "failed"]
    assert got["events"][-1]["data"]["error"] == "ValueError: the printer is on fire"
    assert [(e["attempt"], e["error"]) for e in got["error_history"]] == [
        (1, "ValueError: the printer is on fire")]
    assert "Traceback" in got["error_history"][0]["traceback"]
    done = as_json("show", str(jobs["done"].id))
    assert done["result"] == {"printed": 1}


def test_show_refuses_unknown_and_malformed_ids() -> None:
    missing = uuid.uuid4()
    assert fails("show", str(missing)) == f"no job with id {missing}"
    assert fails("show", "42") == "not a job id (a UUID): '42'"


# -- retry, cancel ------------------------------------------------------------------------


def test_retry_puts_failed_jobs_back(jobs: dict[str, Job]) -> None:
    assert as_json("retry", str(jobs["failed"].id)) == [
        {"id": str(jobs["failed"].id), "retried": True, "status": "pending"}]
    assert get_job(jobs["failed"].id).attempts == 0


def test_retry_of_a_job_in_another_state_fails_after_doing_the_rest(
        jobs: dict[str, Job]) -> None:
    out = io.StringIO()
    with pytest.raises(CommandError) as exc:
        call_command("edgejobs", "retry", str(jobs["done"].id), str(jobs["failed"].id),
                     stdout=out)
    assert str(exc.value) == ("1 of 2 job(s) not retried: only failed or cancelled jobs can be "
                              "retried")
    lines = out.getvalue().splitlines()
    assert lines[1].split(None, 1) == [str(jobs["done"].id),
                                       "not retried: status is completed"]
    assert lines[2].split() == [str(jobs["failed"].id), "retried"]
    assert get_job(jobs["failed"].id).status == "pending"


def test_an_unknown_id_changes_nothing(jobs: dict[str, Job]) -> None:
    missing = str(uuid.uuid4())
    assert fails("retry", str(jobs["failed"].id), missing) == f"no job with id {missing}"
    assert fails("cancel", str(jobs["due"].id), "nope") == "not a job id (a UUID): 'nope'"
    assert get_job(jobs["failed"].id).status == "failed"
    assert get_job(jobs["due"].id).status == "pending"


def test_cancel_cancels_pending_jobs_each_once(jobs: dict[str, Job]) -> None:
    due, later = str(jobs["due"].id), str(jobs["later"].id)
    assert edgejobs("cancel", due, later, due).splitlines()[1:] == [
        f"{due}  cancelled", f"{later}  cancelled"]
    assert {get_job(due).status, get_job(later).status} == {"cancelled"}
    assert fails("cancel", due) == (
        "1 of 1 job(s) not cancelled: only pending or waiting jobs can be cancelled")


# -- stats ---------------------------------------------------------------------------------


def test_stats_counts_per_queue_and_status_with_backlog_age_and_live_workers(
        jobs: dict[str, Job]) -> None:
    Job.objects.filter(id=jobs["due"].id).update(run_at=Now() - timedelta(seconds=120))
    WorkerRow.objects.all().delete()
    WorkerRow.objects.create(id="alive", hostname="h", pid=1, queues=["default"], concurrency=2)
    WorkerRow.objects.create(id="silent", hostname="h", pid=2, queues=["default"],
                             concurrency=2,
                             last_heartbeat=timezone.now() - timedelta(minutes=10))
    WorkerRow.objects.create(id="stopped", hostname="h", pid=3, queues=["default"],
                             concurrency=2, stopped_at=timezone.now())
    got = as_json("stats")
    assert set(got) == {"at", "queues", "totals", "workers_alive", "workers"}
    default = got["queues"]["default"]
    age = default.pop("oldest_due_age_seconds")
    assert 119 <= age < 180
    assert default == {"pending": 1, "due": 1, "waiting": 0, "processing": 0,
                       "completed": 1, "failed": 1, "cancelled": 0, "paused": False}
    assert got["queues"]["reports"] == {"pending": 1, "due": 0, "waiting": 0, "processing": 0,
                                        "completed": 0, "failed": 0, "cancelled": 0,
                                        "oldest_due_age_seconds": None, "paused": False}
    assert got["totals"]["pending"] == 2 and got["totals"]["oldest_due_age_seconds"] == age
    assert got["workers_alive"] == 1
    assert [w["id"] for w in got["workers"]] == ["alive"]
    assert set(got["workers"][0]) == {"id", "hostname", "pid", "queues", "concurrency",
                                      "started_at", "last_heartbeat", "jobs_done"}

    text = edgejobs("stats")
    lines = text.splitlines()
    assert lines[0].split() == ["QUEUE", "PENDING", "DUE", "WAITING", "PROCESSING",
                                "COMPLETED", "FAILED", "CANCELLED", "OLDEST", "DUE"]
    assert lines[1].split()[:8] == ["default", "1", "1", "0", "0", "1", "1", "0"]
    assert lines[1].split()[8].endswith("m")  # about 2.0m
    assert lines[2].split() == ["reports", "1", "0", "0", "0", "0", "0", "0", "-"]
    assert lines[3].split()[:8] == ["(all)", "2", "1", "0", "0", "1", "1", "0"]
    assert "Workers alive: 1" in text and "  alive  queues=default" in text


def test_stats_of_an_empty_database() -> None:
    got = as_json("stats")
    assert (got["queues"], got["totals"]["pending"], got["totals"]["oldest_due_age_seconds"]) == (
        {}, 0, None)


# -- purge ---------------------------------------------------------------------------------


@pytest.fixture
def old(jobs: dict[str, Job]) -> dict[str, Job]:
    Job.objects.filter(id__in=[jobs["done"].id, jobs["failed"].id]).update(
        completed_at=Now() - timedelta(days=40))
    return jobs


def test_purge_with_yes_deletes_only_old_finished_jobs(old: dict[str, Job]) -> None:
    young = enqueue("t.ok")
    Job.objects.filter(id=young.id).update(status=JobStatus.CANCELLED,
                                           completed_at=Now() - timedelta(days=5))
    assert edgejobs("purge", "--days", "30", "--yes") == (
        "Deleted 2 finished job(s) older than 30 day(s).\n")
    assert set(Job.objects.values_list("id", flat=True)) == {
        old["later"].id, old["due"].id, young.id}
    assert as_json("purge", "--days", "1", "-y") == {"deleted": 1, "days": 1.0}


def test_purge_defaults_to_keep_finished_days(old: dict[str, Job], settings: Any) -> None:
    settings.EDGEJOBS = {"KEEP_FINISHED_DAYS": 50}
    assert as_json("purge", "--yes") == {"deleted": 0, "days": 50}
    settings.EDGEJOBS = {"KEEP_FINISHED_DAYS": 35}
    assert as_json("purge", "--yes") == {"deleted": 2, "days": 35}


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_purge_without_yes_asks_on_a_terminal(old: dict[str, Job],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    err = io.StringIO()
    monkeypatch.setattr(sys, "stdin", FakeTerminal("n\n"))
    out = io.StringIO()
    call_command("edgejobs", "purge", "--days", "30", stdout=out, stderr=err)
    assert err.getvalue() == "Delete 2 finished job(s) older than 30 day(s)? [y/N] "
    assert out.getvalue() == "Purge cancelled; nothing deleted.\n"
    assert Job.objects.count() == 4
    monkeypatch.setattr(sys, "stdin", FakeTerminal("y\n"))
    assert edgejobs("purge", "--days", "30") == (
        "Deleted 2 finished job(s) older than 30 day(s).\n")
    assert Job.objects.count() == 2


def test_purge_without_yes_and_without_a_terminal_refuses(old: dict[str, Job],
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))
    assert fails("purge", "--days", "30") == (
        "purge would delete 2 finished job(s) older than 30 day(s); pass --yes to confirm "
        "(there is no terminal to ask)")
    assert Job.objects.count() == 4


def test_purge_with_nothing_to_delete_needs_no_confirmation(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    assert edgejobs("purge") == "Deleted 0 finished job(s) older than 30 day(s).\n"


def test_an_unknown_subcommand_is_a_command_error() -> None:
    assert "invalid choice: 'explode'" in fails("explode")


# -- a real process -------------------------------------------------------------------------


def database_url() -> str:
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def manage(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": database_url(), "EDGEJOBS_LOG_LEVEL": "WARNING"}
    return subprocess.run([sys.executable, str(ROOT / "testproject" / "manage.py"), *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.django_db(transaction=True)
def test_a_real_manage_py_run_prints_json_and_fails_with_status_1(register: Callable) -> None:
    first = enqueue("qa.noop", {"n": 1}, tags=["ops"])
    second = enqueue("qa.record", {"n": 2}, queue="reports")

    proc = manage("edgejobs", "list", "--json")
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert [(item["id"], item["type"], item["queue"]) for item in got] == [
        (str(second.id), "qa.record", "reports"), (str(first.id), "qa.noop", "default")]
    assert all(tuple(item) == JOB_KEYS for item in got)

    proc = manage("edgejobs", "list", "--json", "--status", "finished")
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert "CommandError: unknown status 'finished'" in proc.stderr
