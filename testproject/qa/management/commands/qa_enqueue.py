"""Enqueue ``qa.work`` jobs from a process of its own: the fault suite runs it with
``DATABASE_URL`` pointing at a connection pooler, as a web process behind one would enqueue.

Prints one JSON line: ``{"ids": [...], "errors": [...]}``, the ids of the jobs enqueued and
each database error an enqueue raised (the test asserts there are none). Exit status 0 either
way: the errors are the finding.
"""

import json

from django.core.management.base import BaseCommand
from django.db import DatabaseError

from django_edgejobs import enqueue, enqueue_many


class Command(BaseCommand):
    help = "Enqueue COUNT qa.work jobs; print the ids and the errors as one JSON line."

    def add_arguments(self, parser):
        parser.add_argument("count", type=int)
        parser.add_argument("--seconds", type=float, default=0.0,
                            help="how long each job works")
        parser.add_argument("--batch", type=int, default=1,
                            help="jobs per enqueue_many call (1: one enqueue per job)")

    def handle(self, *args, count, seconds, batch, **options):
        ids: list[str] = []
        errors: list[str] = []
        payload = {"seconds": seconds}
        left = count
        while left > 0:
            size = min(batch, left)
            left -= size
            try:
                if size == 1:
                    ids.append(str(enqueue("qa.work", payload).id))
                else:
                    ids += [str(j.id) for j in enqueue_many(
                        [{"type": "qa.work", "payload": payload}] * size)]
            except DatabaseError as exc:
                errors.append(f"{type(exc).__name__}: {exc}".strip())
        self.stdout.write(json.dumps({"ids": ids, "errors": errors}))
