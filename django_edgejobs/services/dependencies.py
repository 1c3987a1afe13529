"""``depends_on`` at enqueue: the references checked (before anything is written), cycles
refused, and the edges linked in the enqueue's transaction (``store/dependencies.py``)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import Any

from django.db import DatabaseError, transaction

from ..models import Job, JobStatus
from ..models.workflow import ON_DEPENDENCY_FAILURE

logger = logging.getLogger("django_edgejobs")


def check(depends_on: Any, on_failure: Any, *, where: str,
          indexes: int | None) -> tuple[list[Any], str]:
    """The references of ``depends_on`` (ids as UUIDs, jobs of the same ``enqueue_many``
    by position as ints), and the ``on_dependency_failure`` choice; raises naming the bad
    one. ``indexes``: how many items the ``enqueue_many`` call has (None: one enqueue)."""
    if on_failure is None:
        on_failure = "cancel"
    elif on_failure not in ON_DEPENDENCY_FAILURE:
        raise ValueError(f"{where}: on_dependency_failure must be one of "
                         f"{', '.join(map(repr, ON_DEPENDENCY_FAILURE))}, got {on_failure!r}")
    if depends_on is None:
        return [], on_failure
    if isinstance(depends_on, (str, bytes, Job, uuid.UUID)) or not isinstance(
            depends_on, (list, tuple, set, frozenset)):
        raise ValueError(f"{where}: depends_on must be a list of jobs or job ids, got "
                         f"{type(depends_on).__name__}")
    refs: list[Any] = []
    for ref in depends_on:
        refs.append(_reference(ref, where=where, indexes=indexes))
    return list(dict.fromkeys(refs)), on_failure


def _reference(ref: Any, *, where: str, indexes: int | None) -> Any:
    if isinstance(ref, Job):
        return ref.id
    if isinstance(ref, uuid.UUID):
        return ref
    if isinstance(ref, str):
        try:
            return uuid.UUID(ref)
        except ValueError:
            raise ValueError(f"{where}: depends_on: {ref!r} is not a job id") from None
    if isinstance(ref, int) and not isinstance(ref, bool):
        if indexes is None:
            raise ValueError(f"{where}: depends_on: {ref!r} is a position, which only "
                             "enqueue_many items may give (the position of another item of "
                             "the same call)")
        if not 0 <= ref < indexes:
            raise ValueError(f"{where}: depends_on: item {ref} does not exist (the call "
                             f"has {indexes} items)")
        return ref
    raise ValueError(f"{where}: depends_on: {ref!r} is neither a job nor a job id")


def resolve_positions(jobs: list, where: str = "enqueue_many") -> None:
    """``enqueue_many``: positions in ``depends_on`` become the jobs built for those items;
    a cycle among the items (or an item that depends on itself, or on an item discarded by
    its schema) raises, naming the items."""
    graph: dict[int, list[int]] = {}
    for index, job in enumerate(jobs):
        refs = getattr(job, "depends_on_refs", None) if job is not None else None
        if refs:
            graph[index] = [r for r in refs if isinstance(r, int)]
    if not any(graph.values()):
        return
    for index, targets in graph.items():
        for target in targets:
            if jobs[target] is None:
                raise ValueError(f"{where} item {index}: depends_on: item {target} was "
                                 "discarded (on_invalid='discard'), so it can never finish")
    cycle = _find_cycle(graph)
    if cycle:
        raise ValueError(f"{where}: depends_on makes a cycle: "
                         + " -> ".join(f"item {i}" for i in cycle))
    for index in graph:
        job = jobs[index]
        job.depends_on_refs = [jobs[r] if isinstance(r, int) else r
                               for r in job.depends_on_refs]


def _find_cycle(graph: dict[int, list[int]]) -> list[int]:
    """A cycle of the graph (node -> the nodes it depends on) as a path, or []."""
    state: dict[int, int] = {}  # 1: on the path, 2: done
    for start in graph:
        if state.get(start):
            continue
        path: list[int] = []
        stack: list[tuple[int, int]] = [(start, 0)]
        while stack:
            node, i = stack.pop()
            if i == 0:
                state[node] = 1
                path.append(node)
            targets = graph.get(node, [])
            if i < len(targets):
                stack.append((node, i + 1))
                nxt = targets[i]
                if state.get(nxt) == 1:
                    return [*path[path.index(nxt):], nxt]
                if not state.get(nxt):
                    stack.append((nxt, 0))
            else:
                state[node] = 2
                path.pop()
    return []


def check_known(alias: str, waiting: Sequence[Job], jobs: Sequence[Job]) -> None:
    """Every id in ``depends_on`` names a job that exists (or one of this call's); else
    ``ValueError`` naming the ids, before anything is written."""
    own = {j.id for j in jobs if j is not None}
    wanted = {r for j in waiting for r in j.depends_on_refs
              if isinstance(r, uuid.UUID) and r not in own}
    if not wanted:
        return
    found = set(Job.objects.using(alias).filter(id__in=wanted).values_list("id", flat=True))
    missing = sorted(str(i) for i in wanted - found)
    if missing:
        raise ValueError(f"depends_on: no job with id {', '.join(missing)}")


def link(store: Any, written: list, jobs: list) -> None:
    """In the enqueue's transaction: the edges of the jobs just inserted that wait for
    others (a job whose idempotency key found an existing one keeps that one's), settled
    at once against dependencies already finished; and, for the dependencies written before
    this call, once more after the commit, taking their row locks (one finishing at that
    moment is waited for). A job of this call cannot be finished by a statement that did not
    see the commit, so its own edges need no second look."""
    stored = {id(built): job for built, job in zip(jobs, written, strict=True)}
    inserted = {job.id for built, job in zip(jobs, written, strict=True) if job is built}
    edges, older, failed = [], set(), set()
    for built, job in zip(jobs, written, strict=True):
        if job is not built or not getattr(built, "depends_on_refs", None):
            continue
        for ref in built.depends_on_refs:
            target = stored[id(ref)] if isinstance(ref, Job) else None
            target_id = target.id if target is not None else ref
            if target_id not in inserted:
                older.add(target_id)  # written before (or found by an idempotency key)
            elif target is not None and target.status == JobStatus.FAILED:
                failed.add(target_id)  # refused by its schema (on_invalid="fail")
            edges.append((job.id, target_id, built.on_dependency_failure))
    if not edges:
        return
    settled = store.link(edges, older | failed)
    for job in written:  # what the enqueue returns says what the settle made of it
        if job.id in settled.ready:
            job.status, job.wait_token = JobStatus.PENDING, ""
        elif job.id in settled.cancelled:
            job.status, job.wait_token = JobStatus.CANCELLED, ""
    if not older:
        return
    upstream = sorted(older)

    def settle() -> None:
        try:
            store.settle(upstream, lock=True)
        except DatabaseError:
            logger.warning("cannot settle %d dependencies after the enqueue; the "
                           "supervisor's resumer will", len(upstream), exc_info=True)

    transaction.on_commit(settle, using=store.alias)
