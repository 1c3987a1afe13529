"""Work across jobs: a job's dependencies and a batch's callbacks (``models/workflow.py``).

- ``link``: in the enqueue's transaction, the edges of new jobs that wait for others.
- ``settle``: after jobs finished, resolve the edges that wait for them, each once: a
  dependent whose last edge this resolves becomes due (``dependencies done``), one whose
  dependency failed or was cancelled is cancelled (``dependency failed``, then its own
  dependents, and so on down) unless it runs anyway (``on_dependency_failure="run"``).
- ``revive``: a manual retry of a job brings back the dependents its failure cancelled.
- ``stranded``: finished jobs with edges still unresolved (their settle never ran: the
  process died between the outcome's commit and the settle); the resumer settles them.
- ``release_orphans``: jobs left waiting with no edge (a dependency was deleted); the resumer
  makes them due.
- ``dependency_results``: what a dependent's handler reads.

Exactly once, by the database: an edge is resolved by a conditional UPDATE under its row lock
(a second settler of the same job waits, then finds it resolved), and a dependent's remaining
edges are counted after its own row lock is taken, so of two transactions resolving its last
two edges at the same instant, the later one counts zero and makes it due, the earlier one
counts one. Locks are taken in id order (edges, then dependents), so settlers do not deadlock.

Who calls ``settle``: ``finish`` (the worker's outcomes) after its commit, for the jobs that
finished with unresolved edges; cancel, expire and the rescuer for theirs; ``link`` for a
dependency already finished, and once more after the enqueue commits (with ``lock``: it
waits for a completion being written at that moment, so a dependency that finished between
the enqueue's check and its commit is never missed).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.db.models import Count, Exists, F, OuterRef, Q
from django.db.models.functions import Greatest

from .. import signals
from ..models import Batch, Job, JobDependency, JobStatus
from ..models import transitions as t
from ..models.clock import Now
from ..models.job import DEPENDENCIES, FINISHED_STATUSES
from .core import StoreCore


@dataclass
class Settled:
    """What a settle did: the dependents made due and those cancelled (all levels)."""

    ready: list[uuid.UUID] = field(default_factory=list)
    cancelled: list[uuid.UUID] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.ready or self.cancelled)


class DependencyVerbs(StoreCore):
    """``link``, ``settle``, ``revive``, ``stranded``, ``dependency_results``."""

    def link(self, edges: Iterable[tuple[uuid.UUID, uuid.UUID, str]],
             finished: Iterable[uuid.UUID]) -> Settled:
        """Write the edges (dependent, dependency, on_failure) of jobs just inserted (waiting
        for their dependencies), inside the enqueue's transaction, and settle at once those
        of ``finished`` (the dependencies that may have finished already: those written
        before this transaction, and any of its own it failed) that have; returns what that
        settled. The caller settles the older ones once more after its commit
        (``settle(..., lock=True)``)."""
        rows = [JobDependency(job_id=job, depends_on_id=dep, on_failure=on_failure)
                for job, dep, on_failure in edges]
        if not rows:
            return Settled()
        with transaction.atomic(using=self.alias, savepoint=False):
            JobDependency.objects.using(self.alias).bulk_create(rows)
            return self._settle(set(finished), lock=False)

    def settle(self, job_ids: Iterable[uuid.UUID], *, lock: bool = False) -> Settled:
        """Resolve the edges waiting for these jobs, those of them that have finished; in one
        transaction (the caller's, if one is open). ``lock``: take the finished jobs' row
        locks first (a completion being written waits, or is waited for)."""
        ids = set(job_ids)
        if not ids:
            return Settled()

        def run() -> Settled:
            with transaction.atomic(using=self.alias):
                return self._settle(ids, lock=lock)

        return self.retrying(run)

    def _settle(self, job_ids: set[uuid.UUID], *, lock: bool) -> Settled:
        jobs = Job.objects.using(self.alias)
        edges = JobDependency.objects.using(self.alias)
        done = Settled()
        work = sorted(job_ids)
        while work:
            if lock:
                # By id, whatever the status: a row a completion is writing at this moment
                # is not finished in this statement's snapshot, and FOR UPDATE only waits
                # for the rows its WHERE matches. Then read the statuses it waited for. (NO
                # KEY: an enqueue adding a dependency on the row, whose foreign key check
                # takes KEY SHARE, is not held up.)
                list(jobs.filter(id__in=work).order_by("id").select_for_update(no_key=True)
                     .values_list("id", flat=True))
            statuses = dict(jobs.filter(id__in=work, status__in=FINISHED_STATUSES)
                            .values_list("id", "status"))
            lock = False  # the dependents cancelled below are ours already
            # The unresolved edges of those, locked; a concurrent settler of the same job
            # waits here, and then finds them resolved.
            open_edges = list(edges.filter(depends_on_id__in=list(statuses), resolved=False)
                              .order_by("id").select_for_update()
                              .values_list("id", "job_id", "depends_on_id", "on_failure"))
            if not open_edges:
                break
            edges.filter(id__in=[e[0] for e in open_edges]).update(resolved=True)
            # The dependents still waiting for their dependencies, locked in id order: from
            # here on no other settler can look at their open edges until this one commits.
            dependents = sorted({e[1] for e in open_edges})
            waiting = set(jobs.filter(id__in=dependents, status=JobStatus.WAITING,
                                      wait_token=DEPENDENCIES)
                          .order_by("id").select_for_update().values_list("id", flat=True))
            failing = [e for e in open_edges if e[1] in waiting and e[3] == "cancel"
                       and statuses[e[2]] != JobStatus.COMPLETED]
            cancel = sorted({e[1] for e in failing})
            if cancel:
                edges.filter(id__in=[e[0] for e in failing]).update(cancelled=True)
                jobs.filter(id__in=cancel, status__in=t.DEPENDENCY_FAILED.sources).update(
                    status=t.DEPENDENCY_FAILED.target, completed_at=Now(), wait_token="",
                    updated_at=Now())
                why = {e[1]: (e[2], statuses[e[2]]) for e in failing}
                self._events((job_id, t.DEPENDENCY_FAILED.event,
                              {"reason": "dependency", "dependency": str(why[job_id][0]),
                               "dependency_status": str(why[job_id][1])})
                             for job_id in cancel)
                done.cancelled += cancel
            gone = set(cancel)
            rest = [j for j in dependents if j in waiting and j not in gone]
            # Read after the dependents' locks: the edges other settlers resolved are seen.
            ready = sorted(jobs.filter(id__in=rest).filter(~Exists(
                edges.filter(job_id=OuterRef("id"), resolved=False))).values_list(
                "id", flat=True)) if rest else []
            if ready:
                jobs.filter(id__in=ready, status__in=t.DEPENDENCIES_DONE.sources,
                            wait_token=DEPENDENCIES).update(
                    status=t.DEPENDENCIES_DONE.target, wait_token="",
                    run_at=Greatest(F("run_at"), Now()), updated_at=Now())
                self._events((job_id, t.DEPENDENCIES_DONE.event, {"reason": "dependencies"})
                             for job_id in ready)
                self._fill_batch_counts(ready)
                done.ready += ready
            work = cancel  # their own dependents, and so on down
        if done.ready:
            self.notify(set(jobs.filter(id__in=done.ready).values_list("queue", flat=True)))
        if done.cancelled and signals.job_cancelled.has_listeners():
            cancelled = list(jobs.filter(id__in=done.cancelled))
            transaction.on_commit(
                lambda: [signals.job_cancelled.send(sender=Job, job=j) for j in cancelled],
                using=self.alias)
        return done

    def _fill_batch_counts(self, ready: list[uuid.UUID]) -> None:
        """A batch's callback made due gets the batch's counts in its payload (``batch``)."""
        batches = Batch.objects.using(self.alias).filter(
            Q(on_complete_job__in=ready) | Q(on_success_job__in=ready))
        made_due = set(ready)
        for batch in batches:
            counts = batch_counts(self.alias, batch)
            callbacks = [i for i in batch.callback_ids if i in made_due]
            for job in Job.objects.using(self.alias).filter(id__in=callbacks).only("payload"):
                payload = job.payload if isinstance(job.payload, dict) else {
                    "payload": job.payload}
                Job.objects.using(self.alias).filter(id=job.id).update(
                    payload={**payload, "batch": counts})

    def revive(self, job_ids: Iterable[uuid.UUID]) -> list[uuid.UUID]:
        """Jobs were put back to pending by a manual retry: the dependents their failure had
        cancelled (and theirs, and so on down) wait for their dependencies again, and are
        settled at once against those already finished. Inside the caller's transaction;
        returns the ids revived."""
        jobs = Job.objects.using(self.alias)
        edges = JobDependency.objects.using(self.alias)
        revived: list[uuid.UUID] = []
        work = sorted(set(job_ids))
        while work:
            dependents = sorted(set(edges.filter(depends_on_id__in=work, cancelled=True)
                                    .values_list("job_id", flat=True)))
            if not dependents:
                break
            back = list(jobs.filter(id__in=dependents, status__in=t.REVIVE.sources)
                        .order_by("id").select_for_update().values_list("id", flat=True))
            if back:
                jobs.filter(id__in=back, status__in=t.REVIVE.sources).update(
                    status=t.REVIVE.target, wait_token=DEPENDENCIES, completed_at=None,
                    updated_at=Now())
                edges.filter(job_id__in=back).update(resolved=False, cancelled=False)
                self._events((j, t.REVIVE.event, {"reason": "dependency retried"})
                             for j in back)
                revived += back
            work = back
        if revived:
            upstream = set(edges.filter(job_id__in=revived).values_list("depends_on_id",
                                                                        flat=True))
            self._settle(upstream, lock=False)
        return revived

    def stranded(self, limit: int = 500) -> list[uuid.UUID]:
        """Finished jobs with edges still unresolved, finished a while ago (a settle after
        their outcome never ran); ``settle`` them."""
        return list(JobDependency.objects.using(self.alias)
                    .filter(resolved=False, depends_on__status__in=FINISHED_STATUSES,
                            depends_on__updated_at__lt=Now() - STRANDED_AFTER)
                    .values_list("depends_on_id", flat=True).distinct()[:limit])

    def release_orphans(self, limit: int = 500) -> list[uuid.UUID]:
        """Jobs waiting for dependencies with no edge left to wait on: a dependency was
        deleted (its edges go with it) before it finished. Nothing would ever settle them:
        they become due now (``dependencies done``, reason ``dependency deleted``). Returns
        their ids."""
        jobs = Job.objects.using(self.alias)
        open_edges = JobDependency.objects.using(self.alias).filter(job_id=OuterRef("id"),
                                                                    resolved=False)

        def run() -> list[uuid.UUID]:
            with transaction.atomic(using=self.alias):
                waiting = jobs.filter(status__in=t.DEPENDENCIES_DONE.sources,
                                      wait_token=DEPENDENCIES,
                                      updated_at__lt=Now() - STRANDED_AFTER)
                ids = list(waiting.filter(~Exists(open_edges)).order_by("id")
                           .select_for_update(skip_locked=True)
                           .values_list("id", flat=True)[:limit])
                # Re-checked under the lock: an edge settled meanwhile made it due already.
                ids = list(waiting.filter(id__in=ids).filter(~Exists(open_edges))
                           .values_list("id", flat=True))
                if ids:
                    jobs.filter(id__in=ids).update(
                        status=t.DEPENDENCIES_DONE.target, wait_token="",
                        run_at=Greatest(F("run_at"), Now()), updated_at=Now())
                    self._events((i, t.DEPENDENCIES_DONE.event,
                                  {"reason": "dependency deleted"}) for i in ids)
                    self.notify(set(jobs.filter(id__in=ids).values_list("queue", flat=True)))
                return ids

        return self.retrying(run)

    def with_open_dependents(self, job_ids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
        """Which of these jobs have edges still unresolved (dependents to settle)."""
        ids = list(job_ids)
        if not ids:
            return set()
        return set(JobDependency.objects.using(self.alias)
                   .filter(depends_on_id__in=ids, resolved=False)
                   .values_list("depends_on_id", flat=True).distinct())

    def dependency_results(self, job_id: uuid.UUID) -> dict[uuid.UUID, Any]:
        """``{dependency id: its result}`` (None for one that did not complete)."""
        return dict(Job.objects.using(self.alias)
                    .filter(dependent_edges__job_id=job_id).values_list("id", "result"))


#: A finished job's unresolved edges are left to its own settle this long before the resumer
#: settles them (both are safe at once; this only spares the work twice).
STRANDED_AFTER = timedelta(seconds=5)


def batch_counts(alias: str, batch: Batch) -> dict[str, Any]:
    """A batch's counts (``Batch.counts``), from one grouped query of its jobs."""
    return batch.counts(dict(Job.objects.using(alias).filter(batch_id=batch.id)
                             .values("status").annotate(n=Count("id"))
                             .values_list("status", "n")))
