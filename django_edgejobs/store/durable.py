"""Durable jobs: recorded steps, wait tokens (create, check, time out) and waking waiting jobs
(for a resolved token, or when their time has come)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from django.db import transaction

from ..models import Job, JobStatus, WaitToken
from ..models import transitions as t
from ..models.clock import Now
from .core import StoreCore


class DurableVerbs(StoreCore):
    """Steps, tokens and resumes."""

    def add_event(self, job_id: uuid.UUID, kind: str, data: dict[str, Any]) -> None:
        self._events([(job_id, kind, data)])

    def save_steps(self, job_id: uuid.UUID, lease_token: uuid.UUID,
                   steps: dict[str, Any]) -> bool:
        return bool(
            Job.objects.using(self.alias)
            .filter(id=job_id, lease_token=lease_token, status=JobStatus.PROCESSING)
            .update(steps=steps, updated_at=Now())
        )

    def create_token(self, job_id: uuid.UUID, lease_token: uuid.UUID, key: str,
                     timeout: float | None, tags: list[str]) -> WaitToken | None:
        """Create a token and record it as the job's step ``key``, under the lease."""
        with transaction.atomic(using=self.alias):
            job = (Job.objects.using(self.alias).select_for_update()
                   .filter(id=job_id, lease_token=lease_token, status=JobStatus.PROCESSING)
                   .only("id", "steps").first())
            if job is None:
                return None
            token = WaitToken(job_id=job_id, tags=tags)
            if timeout is not None:
                token.timeout_at = self.db_now() + timedelta(seconds=timeout)
            token.save(using=self.alias, force_insert=True)
            steps = {**(job.steps or {}), key: token.id}
            Job.objects.using(self.alias).filter(id=job_id).update(steps=steps, updated_at=Now())
        return token

    def check_token(self, token_id: str) -> WaitToken | None:
        """The token, timed out first if it is past its timeout."""
        token = WaitToken.objects.using(self.alias).filter(id=token_id).first()
        if (token is not None and token.status == WaitToken.Status.WAITING
                and token.timeout_at is not None and token.timeout_at <= self.db_now()):
            WaitToken.objects.using(self.alias).filter(
                id=token_id, status=WaitToken.Status.WAITING
            ).update(status=WaitToken.Status.TIMED_OUT, completed_at=Now())
            token.refresh_from_db(using=self.alias)
        return token

    def resume_for_token(self, job_id: uuid.UUID, token_id: str, reason: str) -> bool:
        """Wake the job if it waits for this token (due now, no attempt used)."""
        n = Job.objects.using(self.alias).filter(
            id=job_id, status__in=t.RESUME.sources, wait_token=token_id
        ).update(status=t.RESUME.target, run_at=Now(), wait_token="", updated_at=Now())
        if n:
            self.add_event(job_id, t.RESUME.event, {"token": token_id, "reason": reason})
        return bool(n)

    def _resume_if_resolved(self, job_id: uuid.UUID, token_id: str) -> None:
        """A job just went waiting for a token: if the token was resolved meanwhile (between
        the handler's check and now), wake the job at once so the completion is not lost."""
        # No lock needed: the job row is locked by our update, so a completion that commits
        # after this read finds the job waiting and wakes it itself.
        token = WaitToken.objects.using(self.alias).filter(id=token_id).only("status").first()
        if token is None or token.status != WaitToken.Status.WAITING:
            self.resume_for_token(job_id, token_id, "resolved before the wait")

    def resume_due(self, limit: int = 500) -> int:
        """Time waits whose moment has come go back to pending."""

        def run() -> int:
            with transaction.atomic(using=self.alias):
                ids = list(
                    Job.objects.using(self.alias)
                    .filter(status__in=t.RESUME.sources, wait_token="", run_at__lte=Now())
                    .select_for_update(skip_locked=True)
                    .values_list("id", flat=True)[:limit]
                )
                if not ids:
                    return 0
                Job.objects.using(self.alias).filter(
                    id__in=ids, status__in=t.RESUME.sources).update(
                    status=t.RESUME.target, updated_at=Now())
                self._events((i, t.RESUME.event, {"reason": "time"}) for i in ids)
                return len(ids)

        return self.retrying(run)

    def expire_tokens_of(self, token_ids: list[str]) -> int:
        """Time out these tokens if they are waiting and past their timeout."""
        return self.expire_tokens(limit=len(token_ids), ids=token_ids)

    def expire_tokens(self, limit: int = 500, ids: list[str] | None = None) -> int:
        """Waiting tokens past their timeout become timed out; their jobs resume."""

        def run() -> int:
            with transaction.atomic(using=self.alias):
                due = WaitToken.objects.using(self.alias).filter(
                    status=WaitToken.Status.WAITING, timeout_at__lte=Now())
                if ids is not None:
                    due = due.filter(id__in=ids)
                rows = list(
                    due
                    .select_for_update(skip_locked=True)
                    .values_list("id", "job_id")[:limit]
                )
                if not rows:
                    return 0
                WaitToken.objects.using(self.alias).filter(
                    id__in=[r[0] for r in rows], status=WaitToken.Status.WAITING
                ).update(status=WaitToken.Status.TIMED_OUT, completed_at=Now())
                for token_id, job_id in rows:
                    self.resume_for_token(job_id, token_id, "timed_out")
                return len(rows)

        return self.retrying(run)
