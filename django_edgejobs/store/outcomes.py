"""Outcomes of attempts: ``finish`` writes a batch of them (completed, retry, failed, waiting,
released), each fenced by its lease, with its events; ``complete``/``fail``/``release`` are
one-outcome wrappers. Also the lease reads and writes of a running attempt: ``held_leases``,
``set_progress``. Which columns an outcome sets is ``_finish_changes`` (the transitions are
named in ``models/transitions.py``); vendors complete in bulk (``_complete_many``)."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.db import DatabaseError, transaction
from django.db.models import F
from django.db.models.functions import Greatest

from ..fingerprints import error_group
from ..models import Job, JobStatus
from ..models import transitions as t
from ..models.clock import Now
from ..models.job import FINISHED_STATUSES
from .core import Finish, StoreCore, append_error, logger


class OutcomeVerbs(StoreCore):
    """``finish`` and its wrappers; leases and progress."""

    if TYPE_CHECKING:  # DurableVerbs, DependencyVerbs
        def _resume_if_resolved(self, job_id: uuid.UUID, token_id: str) -> None: ...
        def settle(self, job_ids: Iterable[uuid.UUID], *, lock: bool = False) -> Any: ...
        def with_open_dependents(self, job_ids: Iterable[uuid.UUID]) -> set[uuid.UUID]: ...

    #: Vendors that complete many jobs in one statement set this (see ``_complete_many``).
    bulk_complete = False
    #: ... and this when that statement writes the events too (no transaction needed).
    bulk_complete_is_atomic = False

    def finish(self, outcomes: Sequence[Finish]) -> set[uuid.UUID]:
        """Write attempt outcomes, each fenced by its lease; return the ids accepted.

        Plain completions (the common case) go in bulk where the vendor can; the rest row by
        row; all in one transaction. Then, after the commit, the jobs that finished and have
        dependents waiting for them are settled (``dependencies.py``)."""
        if not outcomes:
            return set()
        fast = ([o for o in outcomes if o.kind == "completed" and not o.events]
                if self.bulk_complete else [])
        if fast:
            in_fast = {id(o) for o in fast}
            rest = [o for o in outcomes if id(o) not in in_fast]
        else:
            rest = list(outcomes)
        if fast and not rest and self.bulk_complete_is_atomic:
            accepted, open_edges = self.retrying(lambda: self._complete_many(fast))
        else:
            def run() -> tuple[set[uuid.UUID], set[uuid.UUID]]:
                with transaction.atomic(using=self.alias):
                    done, edges = self._complete_many(fast) if fast else (set(), set())
                    if rest:
                        done_rows, edges_rows = self._finish_rows(rest)
                        done, edges = done | done_rows, edges | edges_rows
                    return done, edges

            accepted, open_edges = self.retrying(run)
        if open_edges:
            try:
                self.settle(open_edges)
            except DatabaseError:  # the outcomes are stored: the resumer settles these later
                logger.warning("cannot settle the dependents of %d finished job(s) now; the "
                               "supervisor's resumer will", len(open_edges), exc_info=True)
        return accepted

    def _complete_many(self, outcomes: list[Finish]) -> tuple[set[uuid.UUID], set[uuid.UUID]]:
        """Complete these jobs (and write their events) in bulk; return the ids accepted, and
        those of them with unresolved dependency edges (to settle after the commit)."""
        raise NotImplementedError

    def _finish_rows(self, outcomes: Sequence[Finish]) -> tuple[set[uuid.UUID], set[uuid.UUID]]:
        """Write outcomes one row at a time, inside the caller's transaction; return the ids
        accepted, and those that finished with unresolved dependency edges."""
        accepted: set[uuid.UUID] = set()
        events: list[tuple[uuid.UUID, str, dict[str, Any]]] = []
        for o in outcomes:
            transition = _transition_of(o)
            n = (
                Job.objects.using(self.alias)
                .filter(id=o.job_id, lease_token=o.lease_token, status__in=transition.sources)
                .update(**self._finish_changes(o))
            )
            if n:
                accepted.add(o.job_id)
                events.extend((o.job_id, kind, data) for kind, data in o.events)
                events.append((o.job_id, transition.event, o.event_data))
        self._events(events)
        for o in outcomes:
            if o.kind == "waiting" and o.wait_token and o.job_id in accepted:
                self._resume_if_resolved(o.job_id, o.wait_token)
        ended = [o.job_id for o in outcomes
                 if o.job_id in accepted and _transition_of(o).target in FINISHED_STATUSES]
        return accepted, self.with_open_dependents(ended)

    def complete(self, job: Job, result: Any = None) -> bool:
        """Mark a claimed job completed under its lease."""
        return job.id in self.finish([Finish(job.id, job.lease_token, "completed",  # type: ignore[arg-type]
                                             result=result, attempt=job.attempts,
                                             event_data={"attempt": job.attempts})])

    def fail(self, job: Job, error: str, traceback: str = "") -> bool:
        """Mark a claimed job failed (no further attempts) under its lease."""
        history = append_error(job.error_history, job.attempts, error, traceback)
        return job.id in self.finish([Finish(job.id, job.lease_token, "failed",  # type: ignore[arg-type]
                                             error=error, traceback=traceback,
                                             attempt=job.attempts, error_history=history,
                                             event_data={"attempt": job.attempts, "error": error,
                                                         "permanent": True})])

    def release(self, job: Job) -> bool:
        """Hand a claimed job back to pending without using its attempt."""
        return job.id in self.finish([Finish(job.id, job.lease_token, "released",  # type: ignore[arg-type]
                                             attempt=job.attempts,
                                             event_data={"attempt": job.attempts})])

    def release_unknown(self, owner: str,
                        known: Collection[uuid.UUID | None]) -> list[uuid.UUID]:
        """Hand back, without using their attempt, the jobs leased to ``owner`` under a lease
        token not in ``known``: those of a claim the database committed but whose answer the
        worker never got (the connection broke as it came back). Each is a fenced release,
        like any other; returns their ids."""
        rows = (Job.objects.using(self.alias)
                .filter(status=JobStatus.PROCESSING, lease_owner=owner)
                .values_list("id", "lease_token", "attempts"))
        lost = [Finish(job_id, token, "released", attempt=attempts,
                       event_data={"attempt": attempts, "reason": "claim answer lost"})
                for job_id, token, attempts in rows
                if token is not None and token not in known]
        return sorted(self.finish(lost)) if lost else []

    def _finish_changes(self, o: Finish) -> dict[str, Any]:
        """The columns an outcome's transition sets (``models/transitions.py`` names them)."""
        transition = _transition_of(o)
        changes: dict[str, Any] = {"status": transition.target, "lease_token": None,
                                   "lease_owner": "", "updated_at": Now()}
        ago = o.ran_ago() if transition in RAN else None
        if ago is not None:  # the handler's own moments, never before the claim
            changes["started_at"] = Greatest(F("started_at"), Now() - timedelta(seconds=ago[0]))
        ended = (Now() if ago is None
                 else Greatest(F("started_at"), Now() - timedelta(seconds=ago[1])))
        if transition is t.COMPLETE:
            changes.update(result=o.result, completed_at=ended)
        elif transition is t.RETRY:
            changes.update(run_at=Now() + timedelta(seconds=o.delay), last_error=o.error,
                           error_history=o.error_history,
                           error_group=error_group(o.error, o.error_history))
        elif transition is t.FAIL:
            changes.update(completed_at=ended, last_error=o.error, error_history=o.error_history,
                           error_group=error_group(o.error, o.error_history))
        elif transition is t.WAIT:
            changes.update(attempts=F("attempts") - 1, run_at=o.until or Now(),
                           wait_token=o.wait_token)
            if o.steps is not None:
                changes["steps"] = o.steps
        elif transition is t.RELEASE:
            # ``delay``: due again that much later (a type this worker has no handler for).
            changes.update(attempts=F("attempts") - 1,
                           run_at=Now() + timedelta(seconds=o.delay) if o.delay else Now())
            if o.error:
                # The stored history is not this outcome's: the fingerprint is left to be
                # read from the row (``services/failures.py``), as for a job of before 0014.
                changes.update(last_error=o.error, error_group=None)
        return changes

    # -- leases, progress -----------------------------------------------------------------

    def held_leases(self, leases: dict[uuid.UUID, uuid.UUID]) -> set[uuid.UUID]:
        """Which of these (job id -> lease token) are still held."""
        if not leases:
            return set()
        rows = Job.objects.using(self.alias).filter(
            id__in=list(leases), status=JobStatus.PROCESSING
        ).values_list("id", "lease_token")
        return {job_id for job_id, token in rows if leases.get(job_id) == token}

    def set_progress(self, job_id: uuid.UUID, lease_token: uuid.UUID, percent: int) -> bool:
        return bool(
            Job.objects.using(self.alias)
            .filter(id=job_id, lease_token=lease_token, status=JobStatus.PROCESSING)
            .update(progress=percent, updated_at=Now())
        )


#: The outcomes of a handler that ran: they stamp its begin and end (``Finish.ran``).
RAN = (t.COMPLETE, t.RETRY, t.FAIL)


def _transition_of(o: Finish) -> t.Transition:
    """The transition an attempt's outcome makes."""
    try:
        return t.OUTCOMES[o.kind]
    except KeyError:  # pragma: no cover - programming error
        raise ValueError(f"unknown outcome kind {o.kind!r}") from None
