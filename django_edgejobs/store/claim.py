"""Claim: take due pending jobs of some queues, leased to a worker, with their ``processing``
events. The portable claim locks with ``select_for_update(skip_locked=True)``; vendors
override ``claim`` with one statement (and reuse ``_claim_events`` where they need it)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from django.db import transaction
from django.db.models import F

from ..models import Job, Queue
from ..models import transitions as t
from ..models.clock import Now
from .core import StoreCore


@dataclass(frozen=True)
class JobTypes:
    """Which job types a claim takes (``runworker --type / --exclude-type``): only those in
    ``only`` when it is not empty, and none in ``exclude``."""

    only: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.only or self.exclude)


class ClaimVerbs(StoreCore):
    """``claim`` and its events."""

    def claim(self, owner: str, queues: Sequence[str], limit: int,
              types: JobTypes | None = None) -> list[Job]:
        """Take up to ``limit`` due pending jobs of ``queues`` (and of ``types``, when given):
        processing, attempt counted, leased to owner. No queues: nothing to take; a paused
        queue gives none; a job with a concurrency or rate limit is ``claim_limited``'s."""
        if limit <= 0 or not queues:
            return []

        def run() -> list[Job]:
            token = uuid.uuid4()
            with transaction.atomic(using=self.alias):
                paused = Queue.objects.using(self.alias).filter(paused=True)
                qs = (Job.objects.using(self.alias).due().in_queues(queues)
                      .filter(concurrency_key="", rate_key="")  # claim_limited's
                      .exclude(queue__in=paused.values("name")))
                if types and types.only:
                    qs = qs.filter(type__in=types.only)
                if types and types.exclude:
                    qs = qs.exclude(type__in=types.exclude)
                ids = list(
                    qs.select_for_update(skip_locked=True)
                    .order_by("-priority", "run_at")
                    .values_list("id", flat=True)[:limit]
                )
                if not ids:
                    return []
                Job.objects.using(self.alias).filter(id__in=ids, status__in=t.CLAIM.sources).update(
                    status=t.CLAIM.target, attempts=F("attempts") + 1, lease_owner=owner,
                    lease_token=token, started_at=Now(), updated_at=Now(),
                )
                jobs = list(Job.objects.using(self.alias).filter(id__in=ids, lease_token=token))
                self._claim_events(jobs)
            jobs.sort(key=lambda j: (-j.priority, j.run_at))
            return jobs

        return self.retrying(run)

    def _claim_events(self, jobs: Sequence[Job]) -> None:
        """The claim's ``processing`` events, stamped with the claim's own moment (its
        ``started_at``, one per statement): the record of when each attempt was claimed,
        which ``started_at`` stops being once the outcome is written."""
        if not jobs:
            return
        self._events(
            ((j.id, t.CLAIM.event, {"attempt": j.attempts, "worker": j.lease_owner})
             for j in jobs), at=jobs[0].started_at)
