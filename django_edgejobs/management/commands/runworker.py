"""``manage.py runworker``: parse arguments, then run a ``Process`` (the worker, the scheduler
and the maintenance services; it owns the signals)."""

from __future__ import annotations

import argparse
import logging
import math
import sys
from collections.abc import Callable
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_edgejobs.conf import MAX_CONCURRENCY


def _integer(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer from ``low`` to ``high``. Its error states the range;
    argparse puts the option's name before it."""
    allowed = f"an integer >= {low}" if high is None else f"an integer from {low} to {high}"

    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            number = None
        if number is None or number < low or (high is not None and number > high):
            raise argparse.ArgumentTypeError(f"must be {allowed}, got {value!r}")
        return number

    return parse


def _seconds(*, zero: bool) -> Callable[[str], float]:
    """An argparse type: a finite number of seconds, > 0 (or >= 0 with ``zero``)."""
    allowed = f"a number of seconds {'>=' if zero else '>'} 0"

    def parse(value: str) -> float:
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not math.isfinite(number) or number < 0 or (number == 0 and not zero):
            raise argparse.ArgumentTypeError(f"must be {allowed}, got {value!r}")
        return number

    return parse


class Command(BaseCommand):
    help = "Run a django-edgejobs worker: claim due jobs and run them until stopped."

    def add_arguments(self, parser: CommandParser) -> None:
        from django_edgejobs.runtime.worker import ADAPTIVE_MAX_BATCH

        parser.add_argument("--queue", "-q", action="append", dest="queues", metavar="NAME",
                            help="A queue to serve (repeat for several). "
                                 "Default: EDGEJOBS['QUEUES'].")
        parser.add_argument("--type", "-t", action="append", dest="types", metavar="NAME",
                            help="Claim only jobs of this type (repeat for several). "
                                 "Default: every type.")
        parser.add_argument("--exclude-type", action="append", dest="exclude_types",
                            metavar="NAME",
                            help="Never claim jobs of this type (repeat for several).")
        parser.add_argument("--concurrency", "-c", type=_integer(1, MAX_CONCURRENCY),
                            metavar="N", help=f"Handler threads, 1-{MAX_CONCURRENCY}. "
                                              "Default: EDGEJOBS['CONCURRENCY'].")
        parser.add_argument("--batch-size", type=_integer(1), metavar="N",
                            help="Most jobs claimed per query, >= 1. Default: "
                                 "EDGEJOBS['BATCH_SIZE'], else adaptive: the concurrency at "
                                 "first, then sized by the jobs' run time, up to "
                                 f"{ADAPTIVE_MAX_BATCH} (or the concurrency, if larger).")
        parser.add_argument("--poll-interval", type=_seconds(zero=False), metavar="SECONDS",
                            help="Seconds between polls when no notification arrives, > 0. "
                                 "Default: EDGEJOBS['POLL_INTERVAL'].")
        parser.add_argument("--burst", action="store_true",
                            help="Run until nothing is due, then exit 0.")
        parser.add_argument("--max-jobs", type=_integer(1), metavar="N",
                            help="Exit (gracefully) after claiming this many jobs, >= 1.")
        parser.add_argument("--no-scheduler", action="store_true",
                            help="Do not run the cron scheduler in this process.")
        parser.add_argument("--scheduler-only", action="store_true",
                            help="Only run the cron scheduler: no job slots, no supervisor.")
        parser.add_argument("--no-supervisor", action="store_true",
                            help="Do not reclaim stuck jobs or prune history in this process.")
        parser.add_argument("--shutdown-timeout", type=_seconds(zero=True), metavar="SECONDS",
                            help="Seconds running jobs get to finish after SIGTERM/SIGINT, "
                                 ">= 0. Default: EDGEJOBS['SHUTDOWN_TIMEOUT'].")
        parser.add_argument("--worker-id", metavar="ID",
                            help="This worker's id (default: host:pid:random).")

    def handle(self, *args: Any, **options: Any) -> None:
        from django_edgejobs.runtime.process import Process
        from django_edgejobs.runtime.worker import Worker, WorkerStartError
        from django_edgejobs.services.validation import validate_queue

        queues = options["queues"]
        try:
            for name in queues or ():
                validate_queue(name, where="--queue")
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        _configure_logging(options["verbosity"])
        if options["scheduler_only"] and options["no_scheduler"]:
            raise CommandError("--scheduler-only and --no-scheduler exclude each other")
        try:
            worker = None if options["scheduler_only"] else Worker(
                queues, concurrency=options["concurrency"], batch_size=options["batch_size"],
                poll_interval=options["poll_interval"], burst=options["burst"],
                max_jobs=options["max_jobs"], shutdown_timeout=options["shutdown_timeout"],
                worker_id=options["worker_id"], types=options["types"],
                exclude_types=options["exclude_types"],
            )
        except ValueError as exc:  # a --type that names no handler, say
            raise CommandError(str(exc)) from exc
        process = Process(worker, scheduler=not options["no_scheduler"],
                          supervisor=not (options["no_supervisor"] or options["scheduler_only"]))
        _warn_if_debug(worker)
        process.install_signal_handlers()
        try:
            code = process.run()
        except WorkerStartError as exc:  # one line; --traceback shows the cause
            message = str(exc)
            if isinstance(exc.__cause__, RuntimeError) and "thread" in str(exc.__cause__):
                concurrency = f" ({worker.concurrency})" if worker is not None else ""
                message += (f". Lower --concurrency{concurrency} or raise the system's limit "
                            "on threads (ulimit -u, a container's pids limit)")
            raise CommandError(message) from exc
        sys.stdout.flush()
        if code:
            sys.exit(code)


def _warn_if_debug(worker: Any) -> None:
    """Under ``DEBUG`` Django keeps each connection's last 9,000 queries in memory: a worker's
    resident memory grows for its first hundred thousand jobs or so (measured: +22 MiB on
    PostgreSQL, +50 MiB on SQLite) and looks like a leak. Celery warns the same way."""
    from django.conf import settings

    if settings.DEBUG:
        connections = worker.concurrency + 6 if worker is not None else 2
        logging.getLogger("django_edgejobs.worker").warning(
            "settings.DEBUG is on: Django keeps the last 9000 queries of each database "
            "connection in memory, and this process uses up to %d; its memory grows by tens "
            "of MB before it levels off. Run workers with DEBUG = False.", connections)


def _configure_logging(verbosity: int) -> None:
    """Show the worker's log lines on stderr unless the project configured these loggers."""
    logger = logging.getLogger("django_edgejobs")
    if logger.handlers or logging.getLogger().handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbosity > 1 else logging.INFO if verbosity else
                    logging.WARNING)
