"""Enqueue: ``insert`` writes new jobs with their ``added`` events and resolves idempotency keys
(a key taken earlier, or earlier in the same batch, yields the job that holds it). Vendors
override ``_insert_rows`` (PostgreSQL: one statement) or ``_write_jobs`` (SQLite)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta

from django.db import transaction

from ..models import Job
from ..models import transitions as t
from .core import StoreCore


class EnqueueVerbs(StoreCore):
    """``insert`` and the steps vendors override."""

    def insert(self, jobs: Sequence[Job]) -> list[Job]:
        """Write new jobs with their ``added`` events; return them in input order.

        A job whose idempotency key already exists (or repeats earlier in ``jobs``) is not
        written: the existing job takes its place in the result.
        """
        if not jobs:
            return []
        first: dict[str, Job] = {}
        for j in jobs:
            if j.idempotency_key:
                first.setdefault(j.idempotency_key, j)

        fresh = [j for j in jobs if not j.idempotency_key or first[j.idempotency_key] is j]

        def run() -> tuple[set[uuid.UUID], dict[str, Job]]:
            # Insert, skipping keys that exist; then look up the jobs holding the keys we lost
            # (taken earlier, or by a concurrent enqueue whose row our insert waited for).
            inserted = self._insert_rows(fresh, conflicts=bool(first))
            lost = [j.idempotency_key for j in fresh
                    if j.idempotency_key and j.id not in inserted]
            return inserted, (self._by_keys(lost) if lost else {})

        inserted, existing = self.retrying(run)
        out = []
        for j in jobs:
            if j.idempotency_key:
                winner = first[j.idempotency_key]
                j = winner if winner.id in inserted else existing[j.idempotency_key]
            if j.id in inserted:
                j._state.adding = False
                j._state.db = self.alias
            out.append(j)
        return out

    def _by_keys(self, keys: list[str]) -> dict[str, Job]:
        rows = Job.objects.using(self.alias).filter(idempotency_key__in=keys)
        return {j.idempotency_key: j for j in rows}  # type: ignore[misc]

    def _insert_rows(self, jobs: list[Job], *, conflicts: bool) -> set[uuid.UUID]:
        """Insert rows with their ``added`` events and wake workers; return the ids inserted.

        ``created_at`` is the database's clock, and delays and expiries count from it
        (``enqueue_delay`` and ``enqueue_expires``, set by ``build_job``)."""
        if not jobs:
            return set()
        now = self.db_now()
        for j in jobs:
            j.created_at = j.updated_at = now
        if any(getattr(j, "enqueue_delay", None) is not None
               or getattr(j, "enqueue_expires", None) is not None for j in jobs):
            for j in jobs:
                delay = getattr(j, "enqueue_delay", None)
                if delay is not None:
                    j.run_at = now + timedelta(seconds=delay)
                expires = getattr(j, "enqueue_expires", None)
                if expires is not None:
                    j.expires_at = now + timedelta(seconds=expires)
        with transaction.atomic(using=self.alias, savepoint=False):
            self._write_jobs(jobs, conflicts=conflicts)
            ids = {j.id for j in jobs}
            if conflicts:
                ids = set(Job.objects.using(self.alias).filter(id__in=ids)
                          .values_list("id", flat=True))
            self._events((j.id, t.ENQUEUE.event, {}) for j in jobs if j.id in ids)
            self.notify({j.queue for j in jobs if j.id in ids})
        return ids

    def _write_jobs(self, jobs: list[Job], *, conflicts: bool) -> None:
        """INSERT the rows; with ``conflicts``, skip those whose idempotency key exists."""
        Job.objects.using(self.alias).bulk_create(jobs, ignore_conflicts=conflicts)
