"""The ops MCP server (``manage.py edgejobs_mcp --user NAME [--read-only]``): the Model Context
Protocol over stdio with the official ``mcp`` SDK (the ``[mcp]`` extra), so an assistant can
read and operate the job queue as one Django user.

Every tool call runs as that user, re-read from the database at each call, and checks the
permission the admin checks for the same act: a user who may not retry gets a tool error and
nothing changes. Payloads, results, steps and event data are masked with ``REDACT_KEYS`` and
long strings cut, as in the admin. Tool arguments are named as the Python functions'
parameters (``get_job`` takes ``job_id``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.db import close_old_connections

from .models import JobEvent
from .redaction import redact, shorten_strings
from .services.export import job_dict
from .services.failures import failure_groups
from .services.jobs import get_job, get_job_events, list_jobs
from .services.lifecycle import cancel_job, retry_all_failed, retry_job
from .services.queues import pause_queue, resume_queue
from .services.schedules import list_crons, trigger_cron
from .services.stats import queue_stats
from .services.tokens import complete_token

#: Longest string value in a tool's answer (the rest is cut, saying how much).
MAX_STRING = 2_000
#: Most jobs ``list_jobs`` returns in one call.
MAX_LIST = 200

VIEW_JOB = "django_edgejobs.view_job"
VIEW_SCHEDULE = "django_edgejobs.view_cronschedule"
RETRY = "django_edgejobs.retry_job"
CANCEL = "django_edgejobs.cancel_job"
PAUSE = "django_edgejobs.pause_queue"
RUN_SCHEDULE = "django_edgejobs.change_cronschedule"
COMPLETE_TOKEN = "django_edgejobs.change_waittoken"

READ_TOOLS = ("list_jobs", "get_job", "get_job_events", "queue_stats", "failure_groups",
              "list_crons")
WRITE_TOOLS = ("retry_job", "cancel_job", "retry_all_failed", "pause_queue", "resume_queue",
               "trigger_cron", "complete_token")


class Refused(Exception):
    """A tool call the user may not make, or with arguments that name nothing."""


def find_user(username: str) -> Any:
    """The active user named ``username``; ``Refused`` says why not."""
    user = get_user_model()._default_manager.filter(
        **{get_user_model().USERNAME_FIELD: username}).first()
    if user is None:
        raise Refused(f"no user is named {username!r}")
    if not user.is_active:
        raise Refused(f"the user {username!r} is inactive")
    return user


def public(value: Any) -> Any:
    """A JSON-ready copy: secrets masked, long strings cut, times in ISO 8601."""
    plain = json.loads(json.dumps(value, default=_default))
    return shorten_strings(redact(plain), MAX_STRING)


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _time(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise Refused(f"{name} must be an ISO 8601 time, got {value!r}") from None


class Tools:
    """The tools, as plain methods (tests call them directly too). ``username``: whose
    permissions every call checks."""

    def __init__(self, username: str, *, read_only: bool = False):
        self.username = username
        self.read_only = read_only

    def _require(self, perm: str) -> None:
        user = find_user(self.username)  # re-read: a user deactivated meanwhile is refused
        if not user.has_perm(perm):
            raise Refused(f"permission denied: {self.username!r} lacks {perm}")

    # -- reads ----------------------------------------------------------------------------

    def list_jobs(self, type: str | None = None, status: str | None = None,
                  queue: str | None = None, tags: list[str] | None = None,
                  tag_mode: str = "all", limit: int = 50, priority: int | None = None,
                  run_at_from: str | None = None, run_at_to: str | None = None,
                  created_from: str | None = None, created_to: str | None = None,
                  before: str | None = None) -> list[dict[str, Any]]:
        """Jobs matching every filter, newest first; ``before`` (a job id from the last
        page) gives the next page. Times are ISO 8601. At most 200 per call."""
        self._require(VIEW_JOB)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIST:
            raise Refused(f"limit must be an integer from 1 to {MAX_LIST}, got {limit!r}")
        jobs = list_jobs(type=type, status=status, queue=queue, tags=tags, tag_mode=tag_mode,
                         limit=limit, priority=priority,
                         run_at_from=_time(run_at_from, "run_at_from"),
                         run_at_to=_time(run_at_to, "run_at_to"),
                         created_from=_time(created_from, "created_from"),
                         created_to=_time(created_to, "created_to"), before=before)
        return public([job_dict(j) for j in jobs])

    def get_job(self, job_id: str) -> dict[str, Any]:
        """One job with its payload, result, error history and latest events."""
        self._require(VIEW_JOB)
        job = get_job(job_id)
        if job is None:
            raise Refused(f"no job has the id {job_id!r}")
        events = list(JobEvent.objects.filter(job_id=job.id).order_by("-id")[:50])
        return public(job_dict(job, detail=True, events=reversed(events)))

    def get_job_events(self, job_id: str) -> list[dict[str, Any]]:
        """The job's events, oldest first."""
        self._require(VIEW_JOB)
        return public([{"type": e.type, "at": e.created_at, "data": e.data}
                       for e in get_job_events(job_id)])

    def queue_stats(self) -> dict[str, Any]:
        """Per queue: jobs by status, due jobs, the oldest due job's age."""
        self._require(VIEW_JOB)
        return public(queue_stats())

    def failure_groups(self, since: str | None = None, type: str | None = None,
                       queue: str | None = None) -> list[dict[str, Any]]:
        """Failed jobs grouped by exception class and normalised message, largest first."""
        self._require(VIEW_JOB)
        return public([asdict(g) for g in failure_groups(since=_time(since, "since"),
                                                         type=type, queue=queue)])

    def list_crons(self, status: str | None = None) -> list[dict[str, Any]]:
        """The cron schedules ("active", "paused" or all)."""
        self._require(VIEW_SCHEDULE)
        return public([{"name": s.name, "cron": s.cron, "timezone": s.timezone,
                        "type": s.type, "enabled": s.enabled, "queue": s.queue,
                        "last_tick_at": s.last_tick_at, "last_outcome": s.last_outcome,
                        "last_job_id": s.last_job_id, "metadata": s.metadata}
                       for s in list_crons(status)])

    # -- writes ---------------------------------------------------------------------------

    def retry_job(self, job_id: str) -> dict[str, Any]:
        """Retry a failed or cancelled job (its attempts start again)."""
        self._require(RETRY)
        return {"job_id": job_id, "retried": retry_job(job_id)}

    def cancel_job(self, job_id: str) -> dict[str, Any]:
        """Cancel a pending or waiting job."""
        self._require(CANCEL)
        return {"job_id": job_id, "cancelled": cancel_job(job_id)}

    def retry_all_failed(self, type: str | None = None, queue: str | None = None,
                         tags: list[str] | None = None, tag_mode: str = "all",
                         error_group: str | None = None) -> dict[str, Any]:
        """Retry every failed job matching the filters (``error_group``: a failure group's
        fingerprint); returns how many."""
        self._require(RETRY)
        return {"retried": retry_all_failed(type=type, queue=queue, tags=tags,
                                            tag_mode=tag_mode, error_group=error_group)}

    def pause_queue(self, queue: str) -> dict[str, Any]:
        """Stop every worker from claiming the queue's jobs (they still enqueue)."""
        self._require(PAUSE)
        return {"queue": queue, "paused": pause_queue(queue)}

    def resume_queue(self, queue: str) -> dict[str, Any]:
        """Let workers claim the queue's jobs again."""
        self._require(PAUSE)
        return {"queue": queue, "resumed": resume_queue(queue)}

    def trigger_cron(self, name: str) -> dict[str, Any]:
        """Run the schedule now; returns the job (a run still active is returned instead)."""
        self._require(RUN_SCHEDULE)
        return {"name": name, "job_id": str(trigger_cron(name).id)}

    def complete_token(self, token_id: str, output: Any = None) -> dict[str, Any]:
        """Complete a wait token with ``output`` (JSON); its job resumes."""
        self._require(COMPLETE_TOKEN)
        return {"token_id": token_id, "completed": complete_token(token_id, output)}

    def names(self) -> tuple[str, ...]:
        return READ_TOOLS if self.read_only else READ_TOOLS + WRITE_TOOLS


def _guarded(method: Callable[..., Any]) -> Callable[..., Any]:
    """A tool: fresh database connections around the call; a refusal or a bad argument
    becomes the tool's error (what the client sees), never a crash of the server."""
    import functools

    from mcp.server.mcpserver.exceptions import ToolError

    @functools.wraps(method)
    def tool(*args: Any, **kwargs: Any) -> Any:
        close_old_connections()
        try:
            return method(*args, **kwargs)
        except (Refused, ValueError, LookupError) as exc:
            raise ToolError(str(exc)) from exc
        finally:
            close_old_connections()

    return tool


def build_server(username: str, *, read_only: bool = False) -> Any:
    """The MCP server for ``username`` (``find_user`` first: an unknown or inactive user
    raises ``Refused``)."""
    from mcp.server.mcpserver import MCPServer

    find_user(username)
    tools = Tools(username, read_only=read_only)
    server = MCPServer("django-edgejobs", instructions=(
        "Operate the django-edgejobs job queue of this Django project as the user "
        f"{username!r}" + (" (read-only)." if read_only else ".")))
    for name in tools.names():
        server.tool(name=name)(_guarded(getattr(tools, name)))
    return server
