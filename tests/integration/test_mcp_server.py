"""The ops MCP server: driven by the official SDK's own stdio client, talking to a real
``manage.py edgejobs_mcp`` process on the test database; and its tools called directly, each
refused without the admin's permission for the same act."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.core.management import CommandError, call_command

from django_edgejobs import add_cron, enqueue, get_job, list_queues, pause_queue
from django_edgejobs.mcp_server import READ_TOOLS, WRITE_TOOLS, Refused, Tools
from django_edgejobs.models import Job
from tests.acceptance.conftest import database_url

mcp = pytest.importorskip("mcp", reason="the [mcp] extra (the official mcp SDK) is not installed")

ROOT = Path(__file__).resolve().parents[2]


def user(name: str, *codenames: str, **fields: Any) -> User:
    u = User.objects.create_user(name, password="pw", **fields)
    u.user_permissions.set(Permission.objects.filter(content_type__app_label="django_edgejobs",
                                                     codename__in=codenames))
    return u


def failed_job(register) -> Job:  # type: ignore[no-untyped-def]
    register("t.charge")
    job = enqueue("t.charge", {"order": 7, "card": {"password": "hunter2"}, "note": "x" * 5000})
    Job.objects.filter(id=job.id).update(status="failed", last_error="ValueError: declined",
                                         attempts=3)
    return job


async def session_calls(username: str, calls: list[tuple[str, dict[str, Any]]],
                        *extra: str) -> tuple[list[str], list[Any]]:
    """Start ``manage.py edgejobs_mcp --user username`` and make ``calls`` with the SDK's
    client; returns (tool names, one (is_error, value) per call)."""
    from mcp import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    params = StdioServerParameters(
        command=sys.executable,
        args=["testproject/manage.py", "edgejobs_mcp", "--user", username, *extra],
        env={**os.environ, "DATABASE_URL": database_url(), "EDGEJOBS_LOG_LEVEL": "WARNING"},
        cwd=str(ROOT))
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        names = sorted(t.name for t in (await session.list_tools()).tools)
        out = []
        for name, arguments in calls:
            result = await session.call_tool(name, arguments)
            text = "".join(getattr(c, "text", "") for c in result.content)
            if result.is_error:
                out.append((True, text))
                continue
            value = result.structured_content
            if value is None:
                value = json.loads(text)
            elif isinstance(value, dict) and set(value) == {"result"}:
                value = value["result"]  # a list answer, wrapped by the SDK
            out.append((False, value))
        return names, out


@pytest.mark.django_db(transaction=True)
def test_the_sdk_client_reads_and_operates_as_the_named_user_with_its_permissions(register):
    job = failed_job(register)
    user("viewer", "view_job")
    user("ops", "view_job", "retry_job", "pause_queue")
    # A viewer: every tool is offered; reads answer (secrets masked, long text cut); a
    # retry is a tool error and changes nothing.
    names, ((err1, detail), (err2, refused)) = asyncio.run(session_calls(
        "viewer", [("get_job", {"job_id": str(job.id)}), ("retry_job", {"job_id": str(job.id)})]))
    assert names == sorted(READ_TOOLS + WRITE_TOOLS)
    assert not err1 and detail["id"] == str(job.id) and detail["status"] == "failed"
    assert detail["payload"]["card"] == {"password": "********"}
    assert detail["payload"]["note"].endswith("(3,000 more characters)")
    assert err2 and "lacks django_edgejobs.retry_job" in refused
    assert get_job(job.id).status == "failed"
    # Read-only: no tool that writes is offered.
    names, _ = asyncio.run(session_calls("ops", [], "--read-only"))
    assert names == sorted(READ_TOOLS)
    # A user with the permissions: the retry and the pause happen.
    _, ((err3, retried), (err4, paused), (err5, listed)) = asyncio.run(session_calls("ops", [
        ("retry_job", {"job_id": str(job.id)}), ("pause_queue", {"queue": "emails"}),
        ("list_jobs", {"status": "pending", "limit": 10})]))
    assert not (err3 or err4 or err5)
    assert retried == {"job_id": str(job.id), "retried": True} and paused["paused"] is True
    assert [j["id"] for j in listed] == [str(job.id)]
    assert get_job(job.id).status == "pending"
    assert {q.name: q.paused for q in list_queues()}["emails"] is True


@pytest.mark.django_db
def test_an_unknown_or_inactive_user_is_refused_at_start():
    user("gone", "view_job", is_active=False)
    with pytest.raises(CommandError, match="no user is named 'ghost'"):
        call_command("edgejobs_mcp", "--user", "ghost")
    with pytest.raises(CommandError, match="the user 'gone' is inactive"):
        call_command("edgejobs_mcp", "--user", "gone")


@pytest.mark.django_db
@pytest.mark.parametrize(("tool", "arguments", "perm"), [
    ("retry_job", {"job_id": "x"}, "retry_job"),
    ("retry_all_failed", {}, "retry_job"),
    ("cancel_job", {"job_id": "x"}, "cancel_job"),
    ("pause_queue", {"queue": "q"}, "pause_queue"),
    ("resume_queue", {"queue": "q"}, "pause_queue"),
    ("trigger_cron", {"name": "nightly"}, "change_cronschedule"),
    ("complete_token", {"token_id": "tok_x"}, "change_waittoken"),
    ("list_jobs", {}, "view_job"),
    ("get_job", {"job_id": "x"}, "view_job"),
    ("get_job_events", {"job_id": "x"}, "view_job"),
    ("queue_stats", {}, "view_job"),
    ("failure_groups", {}, "view_job"),
    ("list_crons", {}, "view_cronschedule"),
])
def test_each_tool_checks_the_admins_permission_for_the_same_act(register, tool, arguments,
                                                                   perm):
    register("t.report")
    add_cron("nightly", "0 2 * * *", "t.report")
    everything_else = [c for c in ("view_job", "retry_job", "cancel_job", "pause_queue",
                                   "change_cronschedule", "change_waittoken",
                                   "view_cronschedule") if c != perm]
    user("almost", *everything_else)
    before = list(Job.objects.values_list("id", "status"))
    with pytest.raises(Refused, match=f"lacks django_edgejobs.{perm}"):
        getattr(Tools("almost"), tool)(**arguments)
    assert list(Job.objects.values_list("id", "status")) == before


@pytest.mark.django_db
def test_arguments_are_checked_and_a_deactivated_user_is_refused_at_the_next_call(register):
    register("t.report")
    ops = user("ops", "view_job", "pause_queue", "view_cronschedule")
    tools = Tools("ops")
    with pytest.raises(Refused, match="limit must be an integer from 1 to 200"):
        tools.list_jobs(limit=1000)
    with pytest.raises(Refused, match="created_from must be an ISO 8601 time"):
        tools.list_jobs(created_from="yesterday")
    with pytest.raises(Refused, match="no job has the id 'nope'"):
        tools.get_job("nope")
    assert json.dumps(tools.queue_stats())  # JSON-ready
    pause_queue("emails")
    ops.is_active = False
    ops.save()
    with pytest.raises(Refused, match="inactive"):
        tools.resume_queue("emails")
    assert {q.name: q.paused for q in list_queues()}["emails"] is True
