"""The portable store: Django ORM only. Vendors override the hot paths (insert, claim)."""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from django.db import DatabaseError, connections, transaction
from django.db.models import F, Q
from django.utils import timezone

from ..models import Job, JobEvent, JobStatus, WaitToken, Worker
from ..models import transitions as t
from ..models.clock import Now

logger = logging.getLogger("django_edgejobs.store")

T = TypeVar("T")

#: Errors worth retrying as they are: lock contention and serialisation, never data errors.
TRANSIENT_MARKERS = (
    "database is locked",
    "database table is locked",
    "deadlock detected",
    "could not serialize access",
    "lock not available",
    "could not obtain lock",
)


def is_transient(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, DatabaseError) and any(m in text for m in TRANSIENT_MARKERS)


@dataclass
class Finish:
    """The outcome of one attempt, to be written under the attempt's lease.

    ``kind``: completed, retry (back to pending after ``delay`` s), failed, released (handed
    back without using the attempt, e.g. at shutdown; due again after ``delay`` s, with
    ``error`` as last_error when set), waiting (suspended until ``until`` or
    until ``wait_token`` is resolved, without using the attempt).
    """

    job_id: uuid.UUID
    lease_token: uuid.UUID
    kind: str
    result: Any = None
    error: str = ""
    traceback: str = ""
    attempt: int = 0
    delay: float = 0.0
    error_history: list[dict[str, Any]] = field(default_factory=list)
    until: datetime | None = None
    wait_token: str = ""
    steps: dict[str, Any] | None = None
    #: Further events of the attempt (e.g. ``prolonged``), written before the outcome's own.
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    event_data: dict[str, Any] = field(default_factory=dict)


class Store:
    """Domain verbs over the job tables on one database alias."""

    #: Whether enqueue sends a notification that wakes listening workers.
    supports_notify = False
    #: Another connection's commit can be seen without a query of the job table (SQLite's
    #: ``PRAGMA data_version``: the worker's ``CommitWatcher``).
    watches_commits = False

    def __init__(self, alias: str):
        self.alias = alias

    @property
    def connection(self):
        return connections[self.alias]

    # -- helpers --------------------------------------------------------------------------

    def retrying(self, fn: Callable[[], T], *, attempts: int = 8) -> T:
        """Run ``fn`` (a whole transaction), retrying transient lock errors with backoff.

        Inside an outer atomic block a retry is impossible; the error propagates.
        """
        delay = 0.01
        for attempt in range(attempts):
            try:
                return fn()
            except DatabaseError as exc:
                last = attempt == attempts - 1
                if not is_transient(exc) or self.connection.in_atomic_block or last:
                    raise
                logger.debug("transient database error (%s); retrying in %.3fs", exc, delay)
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 1.0)
        raise AssertionError("unreachable")

    def db_now(self) -> datetime:
        """The database's clock, as the package's ``Now()`` reads it: the statement's moment at
        full precision (``SELECT CURRENT_TIMESTAMP`` is whole seconds on SQLite and the
        transaction's start on PostgreSQL, so moments counted from it came out early)."""
        compiler = Job.objects.using(self.alias).none().query.get_compiler(self.alias)
        sql, params = compiler.compile(Now())
        with self.connection.cursor() as cursor:
            cursor.execute("SELECT " + sql, list(params))
            value = cursor.fetchone()[0]
        if isinstance(value, str):
            from django.utils.dateparse import parse_datetime

            parsed = parse_datetime(value)
            assert parsed is not None
            value = parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed, UTC)
        return value

    now_sql = "CURRENT_TIMESTAMP"

    def _events(self, rows: Iterable[tuple[uuid.UUID, str, dict[str, Any]]]) -> None:
        JobEvent.objects.using(self.alias).bulk_create(
            [JobEvent(job_id=job_id, type=kind, data=data) for job_id, kind, data in rows]
        )

    def notify(self, queues: Iterable[str]) -> None:
        """Wake workers of these queues once the current transaction commits (no-op here)."""

    # -- enqueue --------------------------------------------------------------------------

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

        Delays and expiries count from the database's clock (``enqueue_delay`` and
        ``enqueue_expires``, set by ``build_job``)."""
        if not jobs:
            return set()
        if any(getattr(j, "enqueue_delay", None) is not None
               or getattr(j, "enqueue_expires", None) is not None for j in jobs):
            now = self.db_now()
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

    # -- queries ------------------------------------------------------------------------

    def tag_condition(self, tags: list[str], mode: str) -> tuple[str, list[object]]:
        """SQL (and params) true when a job's tags match ``tags`` under ``mode``.

        Portable form over SQLite's ``json_each``; PostgreSQL uses jsonb operators.
        """
        col = f'"{Job._meta.db_table}"."tags"'
        marks = ", ".join(["%s"] * len(tags)) or "NULL"
        any_sql = f"EXISTS (SELECT 1 FROM json_each({col}) WHERE value IN ({marks}))"
        if mode == "any":
            return any_sql, list(tags)
        if mode == "none":
            return f"NOT {any_sql}", list(tags)
        if mode == "exact" and not tags:
            return f"NOT EXISTS (SELECT 1 FROM json_each({col}))", []
        all_sql = (f"(SELECT COUNT(DISTINCT value) FROM json_each({col}) "
                   f"WHERE value IN ({marks})) = %s")
        if mode == "all":
            return all_sql, [*tags, len(tags)]
        other = f"NOT EXISTS (SELECT 1 FROM json_each({col}) WHERE value NOT IN ({marks}))"
        return f"({all_sql} AND {other})", [*tags, len(tags), *tags]

    # -- the dashboard's reads ------------------------------------------------------------

    def finished_histogram(self, start: datetime, size: int, count: int) -> dict[str, list[int]]:
        """Jobs completed and failed in each of ``count`` buckets of ``size`` seconds from
        ``start``: one range scan of the (status, completed_at) index, which covers it."""
        out = {JobStatus.COMPLETED.value: [0] * count, JobStatus.FAILED.value: [0] * count}
        end = start + timedelta(seconds=size * count)
        for status, bucket, n in self._histogram_rows(start, end, size):
            if status in out and 0 <= bucket < count:
                out[status][bucket] += n
        return out

    def _histogram_rows(self, start: datetime, end: datetime,
                        size: int) -> Iterable[tuple[str, int, int]]:
        """(status, bucket, count) rows. Portable: buckets counted here (vendors: in SQL)."""
        rows = (Job.objects.using(self.alias)
                .filter(status__in=(JobStatus.COMPLETED, JobStatus.FAILED),
                        completed_at__gte=start, completed_at__lt=end)
                .values_list("status", "completed_at"))
        for status, at in rows.iterator(chunk_size=5000):
            if at is not None:  # the filter guarantees it; the type does not
                yield status, int((at - start).total_seconds() // size), 1

    # -- claim ----------------------------------------------------------------------------

    def claim(self, owner: str, queues: Sequence[str], limit: int) -> list[Job]:
        """Take up to ``limit`` due pending jobs of ``queues``: processing, attempt counted,
        leased to owner. No queues: nothing to take."""
        if limit <= 0 or not queues:
            return []

        def run() -> list[Job]:
            token = uuid.uuid4()
            with transaction.atomic(using=self.alias):
                qs = Job.objects.using(self.alias).due().in_queues(queues)
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
        self._events(
            (j.id, t.CLAIM.event, {"attempt": j.attempts, "worker": j.lease_owner})
            for j in jobs
        )

    # -- finish ---------------------------------------------------------------------------

    #: Vendors that complete many jobs in one statement set this (see ``_complete_many``).
    bulk_complete = False
    #: ... and this when that statement writes the events too (no transaction needed).
    bulk_complete_is_atomic = False

    def finish(self, outcomes: Sequence[Finish]) -> set[uuid.UUID]:
        """Write attempt outcomes, each fenced by its lease; return the ids accepted.

        Plain completions (the common case) go in bulk where the vendor can; the rest row by
        row; all in one transaction."""
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
            return self.retrying(lambda: self._complete_many(fast))

        def run() -> set[uuid.UUID]:
            with transaction.atomic(using=self.alias):
                accepted = self._complete_many(fast) if fast else set()
                return accepted | (self._finish_rows(rest) if rest else set())

        return self.retrying(run)

    def _complete_many(self, outcomes: list[Finish]) -> set[uuid.UUID]:
        """Complete these jobs (and write their events) in bulk; return the ids accepted."""
        raise NotImplementedError

    def _finish_rows(self, outcomes: Sequence[Finish]) -> set[uuid.UUID]:
        """Write outcomes one row at a time, inside the caller's transaction."""
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
        return accepted

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

    def _finish_changes(self, o: Finish) -> dict[str, Any]:
        """The columns an outcome's transition sets (``models/transitions.py`` names them)."""
        transition = _transition_of(o)
        changes: dict[str, Any] = {"status": transition.target, "lease_token": None,
                                   "lease_owner": "", "updated_at": Now()}
        if transition is t.COMPLETE:
            changes.update(result=o.result, completed_at=Now())
        elif transition is t.RETRY:
            changes.update(run_at=Now() + timedelta(seconds=o.delay), last_error=o.error,
                           error_history=o.error_history)
        elif transition is t.FAIL:
            changes.update(completed_at=Now(), last_error=o.error, error_history=o.error_history)
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
                changes["last_error"] = o.error
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

    # -- durable steps, waits and tokens ------------------------------------------------

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

    def expire_jobs(self, limit: int = 500) -> list[uuid.UUID]:
        """Pending jobs past their ``expires_at`` are cancelled instead of run (event
        ``cancelled`` with reason ``expired``). Returns their ids."""

        def run() -> list[uuid.UUID]:
            with transaction.atomic(using=self.alias):
                expired = Job.objects.using(self.alias).expired()
                ids = list(expired.select_for_update(skip_locked=True)
                           .values_list("id", flat=True)[:limit])
                if not ids:
                    return []
                # Only rows still pending and expired now: a claim may have won meanwhile.
                ids = list(expired.filter(id__in=ids).values_list("id", flat=True))
                expired.filter(id__in=ids).update(
                    status=t.EXPIRE.target, completed_at=Now(), updated_at=Now())
                self._events((i, t.EXPIRE.event, {"reason": "expired"}) for i in ids)
                return ids

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

    # -- workers --------------------------------------------------------------------------

    def register_worker(self, worker: Worker) -> None:
        """Record a worker as alive (the runtime first reclaims what an earlier process with
        the same id left processing)."""
        worker.save(using=self.alias, force_insert=not Worker.objects.using(self.alias)
                    .filter(id=worker.id).exists())
        Worker.objects.using(self.alias).filter(id=worker.id).update(
            last_heartbeat=Now(), started_at=Now(), stopped_at=None
        )

    def heartbeat(self, worker_id: str, jobs_done: int = 0) -> bool:
        """Prove the worker alive; False when its row is gone (pruned) or marked stopped."""
        return bool(
            Worker.objects.using(self.alias)
            .filter(id=worker_id, stopped_at__isnull=True)
            .update(last_heartbeat=Now(), jobs_done=F("jobs_done") + jobs_done)
        )

    def stop_worker(self, worker_id: str) -> None:
        Worker.objects.using(self.alias).filter(id=worker_id).update(stopped_at=Now())

    # -- supervisor -----------------------------------------------------------------------

    def reclaim(self, worker_timeout: float, limit: int = 500,
                owner: str | None = None) -> list[tuple[uuid.UUID, str]]:
        """Give back jobs whose worker stopped heart-beating (or, with ``owner``, the jobs that
        a previous process with that worker id left behind): pending again, or failed when
        no attempt is left. Safe with many supervisors at once. Returns (id, new status)."""
        threshold = Now() - timedelta(seconds=worker_timeout)

        def run() -> list[tuple[uuid.UUID, str]]:
            out: list[tuple[uuid.UUID, str]] = []
            with transaction.atomic(using=self.alias):
                stuck_qs = Job.objects.using(self.alias).filter(status__in=t.RECLAIM.sources)
                if owner is not None:
                    stuck_qs = stuck_qs.filter(lease_owner=owner)
                    why = f"worker {owner} restarted while running attempt {{attempt}}"
                else:
                    alive = Worker.objects.using(self.alias).filter(
                        last_heartbeat__gte=threshold, stopped_at__isnull=True
                    ).values("id")
                    stuck_qs = stuck_qs.exclude(lease_owner__in=alive)
                    why = (f"worker {{owner}} stopped heart-beating for {worker_timeout:g}s "
                           "while running attempt {attempt}")
                stuck = list(
                    stuck_qs.select_for_update(skip_locked=True)
                    .only("id", "attempts", "max_attempts", "lease_token", "lease_owner",
                          "error_history")[:limit]
                )
                events = []
                for job in stuck:
                    error = why.format(owner=job.lease_owner or "?", attempt=job.attempts)
                    history = append_error(job.error_history, job.attempts, error, "")
                    last = job.attempts >= job.max_attempts
                    transition = t.RECLAIM_FAIL if last else t.RECLAIM
                    status = transition.target
                    changes: dict[str, Any] = dict(
                        status=status, lease_token=None, lease_owner="", last_error=error,
                        error_history=history, updated_at=Now(),
                    )
                    if last:
                        changes["completed_at"] = Now()
                    else:
                        changes["run_at"] = Now()
                    n = Job.objects.using(self.alias).filter(
                        id=job.id, status__in=transition.sources, lease_token=job.lease_token
                    ).update(**changes)
                    if n:
                        out.append((job.id, status))
                        events.append((job.id, transition.event,
                                       {"worker": job.lease_owner, "attempt": job.attempts,
                                        "status": status}))
                        if last:  # the job ended: its end is a failure, as a worker's would be
                            events.append((job.id, t.FAIL.event, {"error": error}))
                self._events(events)
            return out

        return self.retrying(run)

    def prune_jobs(self, days: float, batch: int = 1000) -> int:
        total = 0
        while True:
            ids = list(Job.objects.using(self.alias).finished_before(days)
                       .values_list("id", flat=True)[:batch])
            if not ids:
                return total
            # Count the jobs, not the wait tokens deleted with them.
            total += Job.objects.using(self.alias).filter(id__in=ids).delete()[1].get(
                Job._meta.label, 0)

    def prune_events(self, days: float, batch: int = 5000) -> int:
        total = 0
        cutoff = Now() - timedelta(days=days)
        while True:
            ids = list(JobEvent.objects.using(self.alias).filter(created_at__lt=cutoff)
                       .values_list("id", flat=True)[:batch])
            if not ids:
                return total
            total += JobEvent.objects.using(self.alias).filter(id__in=ids).delete()[0]

    def prune_workers(self, older_than: float) -> int:
        """Forget workers stopped or silent for ``older_than`` seconds (none holds a lease)."""
        cutoff = Now() - timedelta(seconds=older_than)
        holding = Job.objects.using(self.alias).filter(status=JobStatus.PROCESSING).values(
            "lease_owner")
        return Worker.objects.using(self.alias).filter(
            Q(stopped_at__lt=cutoff) | Q(last_heartbeat__lt=cutoff)
        ).exclude(id__in=holding).delete()[0]


def _transition_of(o: Finish) -> t.Transition:
    """The transition an attempt's outcome makes."""
    try:
        return t.OUTCOMES[o.kind]
    except KeyError:  # pragma: no cover - programming error
        raise ValueError(f"unknown outcome kind {o.kind!r}") from None


def append_error(history: list[dict[str, Any]] | None, attempt: int, error: str, tb: str,
              keep: int | None = None) -> list[dict[str, Any]]:
    from ..conf import get_settings

    keep = get_settings().MAX_ERROR_HISTORY if keep is None else keep
    entry = {"attempt": attempt, "error": error, "traceback": tb,
             "at": timezone.now().isoformat()}
    return [*(history or []), entry][-keep:] if keep > 0 else []


