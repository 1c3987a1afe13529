"""``manage.py runworker``: parse arguments, install signal handlers, run the Worker."""

from __future__ import annotations

import logging
import os
import signal
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError(value)
    return number


def _positive_seconds(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise ValueError(value)
    return number


def _seconds(value: str) -> float:
    number = float(value)
    if number < 0:
        raise ValueError(value)
    return number


class Command(BaseCommand):
    help = "Run a django-edgejobs worker: claim due jobs and run them until stopped."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--queue", "-q", action="append", dest="queues", metavar="NAME",
                            help="A queue to serve (repeat for several). "
                                 "Default: EDGEJOBS['QUEUES'].")
        parser.add_argument("--concurrency", "-c", type=_positive_int,
                            help="Handler threads. Default: EDGEJOBS['CONCURRENCY'].")
        parser.add_argument("--batch-size", type=_positive_int,
                            help="Jobs claimed per query. Default: the concurrency.")
        parser.add_argument("--poll-interval", type=_positive_seconds,
                            help="Seconds between polls when no notification arrives.")
        parser.add_argument("--burst", action="store_true",
                            help="Run until nothing is due, then exit 0.")
        parser.add_argument("--max-jobs", type=_positive_int,
                            help="Exit (gracefully) after claiming this many jobs.")
        parser.add_argument("--no-scheduler", action="store_true",
                            help="Do not run the cron scheduler in this process.")
        parser.add_argument("--scheduler-only", action="store_true",
                            help="Only run the cron scheduler: no job slots, no supervisor.")
        parser.add_argument("--no-supervisor", action="store_true",
                            help="Do not reclaim stuck jobs or prune history in this process.")
        parser.add_argument("--shutdown-timeout", type=_seconds,
                            help="Seconds running jobs get to finish after SIGTERM/SIGINT.")
        parser.add_argument("--worker-id", help="This worker's id (default: host:pid:random).")

    def handle(self, *args: Any, **options: Any) -> None:
        from django_edgejobs.runtime.worker import Worker
        from django_edgejobs.services.validation import validate_queue

        queues = options["queues"]
        try:
            for name in queues or ():
                validate_queue(name, where="--queue")
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        _configure_logging(options["verbosity"])
        if options["scheduler_only"]:
            if options["no_scheduler"]:
                raise CommandError("--scheduler-only and --no-scheduler exclude each other")
            _run_scheduler_only()
            return
        worker = Worker(
            queues, concurrency=options["concurrency"], batch_size=options["batch_size"],
            poll_interval=options["poll_interval"], burst=options["burst"],
            max_jobs=options["max_jobs"], supervisor=not options["no_supervisor"],
            scheduler=not options["no_scheduler"], shutdown_timeout=options["shutdown_timeout"],
            worker_id=options["worker_id"],
        )
        signals_seen = []

        def on_signal(signum: int, frame: Any) -> None:
            signals_seen.append(signum)
            if len(signals_seen) == 1:
                worker.request_stop()
            else:
                logging.getLogger("django_edgejobs.worker").warning(
                    "second signal: exiting at once")
                os._exit(1)

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        code = worker.run()
        sys.stdout.flush()
        if code:
            sys.exit(code)


def _run_scheduler_only() -> None:
    """Run the cron scheduler alone until SIGTERM/SIGINT (a second signal exits at once)."""
    import threading

    from django_edgejobs.runtime.scheduler import Scheduler

    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        if stop.is_set():
            os._exit(1)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    Scheduler().run(stop)


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
