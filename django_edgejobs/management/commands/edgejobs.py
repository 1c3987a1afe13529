"""``manage.py edgejobs``: look at and manage jobs from a shell. Parsing and output only: every
action is a call to the public API (``list_jobs``, ``retry_job``, ...) or a service.

Each subcommand prints a table for people, or with ``--json`` one JSON document for scripts
(keys documented in docs/reference/commands.md and kept stable). Bad input (an unknown or
malformed id, an unknown status) is a CommandError: a message on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from ... import (
    cancel_job,
    cleanup_old_jobs,
    get_job,
    get_job_events,
    list_jobs,
    list_queues,
    pause_queue,
    resume_queue,
    retry_job,
)
from ...conf import get_settings
from ...services.export import JOB_KEYS, job_dict
from ...services.export import when as _when
from ...services.jobs import parse_job_id
from ...services.stats import COUNT_KEYS, count_finished_jobs, queue_stats


def _non_negative_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = -1
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {value!r}")
    return number


def _non_negative_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not number >= 0:  # NaN too
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {value!r}")
    return number


def _shown_when(value: datetime | None) -> str:
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def _cut(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width - 1] + "…"


class Command(BaseCommand):
    help = ("Look at and manage django-edgejobs jobs: list, show, retry, cancel, stats, purge, "
            "queues, pause, resume. Add --json for output that scripts can read.")

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

        def action(name: str, help: str) -> CommandParser:
            sub = actions.add_parser(name, help=help, description=help)
            sub.add_argument("--json", action="store_true",
                             help="Print one JSON document instead of a table.")
            return sub

        p = action("list", "List jobs, newest first.")
        p.add_argument("--status", action="append", metavar="STATUS",
                       help="Only jobs with this status (repeat for several).")
        p.add_argument("--queue", help="Only jobs of this queue.")
        p.add_argument("--type", help="Only jobs of this type.")
        p.add_argument("--tag", action="append", metavar="TAG", dest="tags",
                       help="Only jobs carrying this tag (repeat: all of them).")
        p.add_argument("--tag-mode", choices=("all", "any", "exact", "none"), default="all",
                       help="How --tag matches (default: all).")
        p.add_argument("--limit", type=_non_negative_int, default=50,
                       help="At most this many jobs (default 50; 0: no limit).")

        p = action("show", "Show one job with its payload, result, errors and events.")
        p.add_argument("job_id", metavar="ID")

        p = action("retry", "Retry failed or cancelled jobs (due now, fresh attempts).")
        p.add_argument("job_ids", metavar="ID", nargs="+")

        p = action("cancel", "Cancel pending or waiting jobs.")
        p.add_argument("job_ids", metavar="ID", nargs="+")

        action("stats", "Counts per queue and status, the oldest due job's age, live workers.")

        action("queues", "Each queue: paused or running, its jobs by status, the oldest due "
                         "job's age.")
        p = action("pause", "Pause a queue: no worker claims its jobs (they still enqueue; "
                            "running ones finish).")
        p.add_argument("queue", metavar="QUEUE")
        p = action("resume", "Resume a paused queue: workers claim its jobs again.")
        p.add_argument("queue", metavar="QUEUE")

        p = action("purge", "Delete completed, failed and cancelled jobs finished long ago.")
        p.add_argument("--days", type=_non_negative_float, default=None,
                       help="Older than this many days (default: KEEP_FINISHED_DAYS).")
        p.add_argument("--yes", "-y", action="store_true",
                       help="Do not ask for confirmation.")

    def handle(self, *args: Any, **options: Any) -> None:
        getattr(self, f"do_{options['action']}")(options)

    # -- output helpers -----------------------------------------------------------------

    def emit_json(self, data: Any) -> None:
        self.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str))

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        cells = [[str(c) for c in row] for row in rows]
        widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]

        def line(values: Sequence[str]) -> str:
            return "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()

        self.stdout.write(line(headers))
        for row in cells:
            self.stdout.write(line(row))

    def find_jobs(self, ids: Sequence[str]) -> list[Any]:
        """The jobs with these ids, in order; a CommandError naming any unknown id."""
        bad = [i for i in ids if parse_job_id(i) is None]
        if bad:
            raise CommandError(f"not a job id (a UUID): {', '.join(map(repr, bad))}")
        jobs = [get_job(i) for i in ids]
        missing = [i for i, j in zip(ids, jobs, strict=True) if j is None]
        if missing:
            raise CommandError(f"no job with id {', '.join(missing)}")
        return jobs

    # -- subcommands --------------------------------------------------------------------

    def do_list(self, options: dict[str, Any]) -> None:
        try:
            jobs = list_jobs(type=options["type"], status=options["status"],
                             queue=options["queue"], tags=options["tags"],
                             tag_mode=options["tag_mode"], limit=options["limit"] or None)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        if options["json"]:
            self.emit_json([job_dict(j) for j in jobs])
            return
        if not jobs:
            self.stdout.write("No jobs.")
            return
        self.table(
            ("ID", "TYPE", "QUEUE", "STATUS", "TRIES", "PRIO", "RUN AT", "LAST ERROR"),
            [(j.id, _cut(j.type, 30), j.queue, j.status, f"{j.attempts}/{j.max_attempts}",
              j.priority, _shown_when(j.run_at), _cut(j.last_error, 50)) for j in jobs],
        )

    def do_show(self, options: dict[str, Any]) -> None:
        [job] = self.find_jobs([options["job_id"]])
        data = job_dict(job, detail=True, events=get_job_events(job.id))
        if options["json"]:
            self.emit_json(data)
            return
        write = self.stdout.write
        for key in (*JOB_KEYS, "timeout", "retry_delay", "retry_backoff", "retry_mode",
                    "retry_multiplier", "retry_delay_max", "worker"):
            value = data[key]
            if isinstance(value, list):
                value = ", ".join(value)
            write(f"{key + ':':<17}{'-' if value in (None, '') else value}")
        for key in ("payload", "result"):
            write(f"{key}:")
            write(_indent(json.dumps(data[key], indent=2, ensure_ascii=False)))
        write(f"error history ({len(data['error_history'])}):")
        for entry in data["error_history"]:
            write(f"  attempt {entry.get('attempt')} at {entry.get('at')}: {entry.get('error')}")
            if entry.get("traceback"):
                write(_indent(entry["traceback"].rstrip(), 4))
        write(f"events ({len(data['events'])}):")
        for event in data["events"]:
            extra = (f" {json.dumps(event['data'], ensure_ascii=False, sort_keys=True)}"
                     if event["data"] else "")
            write(f"  {event['at']}  {event['type']}{extra}")

    def do_retry(self, options: dict[str, Any]) -> None:
        self._change(options, retry_job, "retried", "only failed or cancelled jobs can be "
                                                    "retried")

    def do_cancel(self, options: dict[str, Any]) -> None:
        self._change(options, cancel_job, "cancelled", "only pending or waiting jobs can be "
                                                       "cancelled")

    def _change(self, options: dict[str, Any], change: Any, done: str, rule: str) -> None:
        jobs = self.find_jobs(options["job_ids"])  # all known, or nothing is changed
        jobs = list({job.id: job for job in jobs}.values())  # each once, in order
        results = []
        for job in jobs:
            changed = bool(change(job.id))
            status = get_job(job.id).status
            results.append({"id": str(job.id), done: changed, "status": status})
        if options["json"]:
            self.emit_json(results)
        else:
            self.table(("ID", "RESULT"), [
                (r["id"], done if r[done] else f"not {done}: status is {r['status']}")
                for r in results])
        failed = [r for r in results if not r[done]]
        if failed:
            raise CommandError(f"{len(failed)} of {len(results)} job(s) not {done}: {rule}")

    def do_stats(self, options: dict[str, Any]) -> None:
        stats = queue_stats()
        if options["json"]:
            self.emit_json({
                **stats, "at": _when(stats["at"]),
                "workers": [{**w, "started_at": _when(w["started_at"]),
                             "last_heartbeat": _when(w["last_heartbeat"])}
                            for w in stats["workers"]],
            })
            return
        rows = [(name, *(entry[k] for k in COUNT_KEYS), _age(entry["oldest_due_age_seconds"]))
                for name, entry in [*stats["queues"].items(), ("(all)", stats["totals"])]]
        self.table(("QUEUE", *(k.upper() for k in COUNT_KEYS), "OLDEST DUE"), rows)
        self.stdout.write("")
        self.stdout.write(f"Workers alive: {stats['workers_alive']}")
        for w in stats["workers"]:
            self.stdout.write(f"  {w['id']}  queues={','.join(w['queues'])} "
                              f"concurrency={w['concurrency']} jobs_done={w['jobs_done']} "
                              f"last_heartbeat={_shown_when(w['last_heartbeat'])}")

    def do_queues(self, options: dict[str, Any]) -> None:
        queues = list_queues()
        if options["json"]:
            self.emit_json([{**asdict(q), "paused_at": _when(q.paused_at)} for q in queues])
            return
        if not queues:
            self.stdout.write("No queues.")
            return
        self.table(("QUEUE", "STATE", "PENDING", "DUE", "PROCESSING", "FAILED", "OLDEST DUE"),
                   [(q.name, "paused" if q.paused else "running", q.pending, q.due,
                     q.processing, q.failed, _age(q.oldest_due_age)) for q in queues])

    def do_pause(self, options: dict[str, Any]) -> None:
        self._pause(options, pause_queue, "paused")

    def do_resume(self, options: dict[str, Any]) -> None:
        self._pause(options, resume_queue, "resumed")

    def _pause(self, options: dict[str, Any], change: Any, done: str) -> None:
        queue = options["queue"]
        try:
            changed = change(queue)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        if options["json"]:
            self.emit_json({"queue": queue, done: changed})
        elif changed:
            self.stdout.write(f"Queue {queue!r} {done}.")
        else:
            self.stdout.write(f"Queue {queue!r} was already "
                              f"{'paused' if done == 'paused' else 'running'}.")

    def do_purge(self, options: dict[str, Any]) -> None:
        days = options["days"]
        days = get_settings().KEEP_FINISHED_DAYS if days is None else days
        found = count_finished_jobs(days)
        what = f"finished job(s) older than {days:g} day(s)"
        if found and not options["yes"]:
            if not sys.stdin.isatty():
                raise CommandError(f"purge would delete {found} {what}; pass --yes to confirm "
                                   "(there is no terminal to ask)")
            self.stderr.write(f"Delete {found} {what}? [y/N] ", ending="")
            self.stderr.flush()
            answer = sys.stdin.readline()
            if answer.strip().lower() not in ("y", "yes"):
                if options["json"]:
                    self.emit_json({"deleted": 0, "days": days})
                else:
                    self.stdout.write("Purge cancelled; nothing deleted.")
                return
        deleted = cleanup_old_jobs(days) if found else 0
        if options["json"]:
            self.emit_json({"deleted": deleted, "days": days})
        else:
            self.stdout.write(f"Deleted {deleted} {what}.")


def _indent(text: str, spaces: int = 2) -> str:
    pad = " " * spaces
    return "\n".join(pad + line for line in text.splitlines())
