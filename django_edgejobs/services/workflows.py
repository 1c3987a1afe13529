"""Batches: ``enqueue_batch`` (jobs enqueued together, with callbacks once they have all
finished) and ``get_batch``. The callbacks are jobs that depend on every job of the batch
(``store/dependencies.py``), so they are made due exactly once, by the database."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import Max

from ..exceptions import JobNotFound
from ..models import Batch, Job, JobStatus
from ..models.job import DEPENDENCIES
from ..store import get_store
from ..store.dependencies import batch_counts
from .enqueue import _Builder, _write, check_item, enqueue_many_items
from .jobs import parse_job_id


@dataclass(frozen=True)
class BatchStatus:
    """A batch as ``get_batch`` reads it. ``pending``: jobs not finished yet."""

    id: uuid.UUID
    description: str
    status: str  # "running" | "finished"
    total: int
    pending: int
    completed: int
    failed: int
    cancelled: int
    on_complete_job: uuid.UUID | None
    on_success_job: uuid.UUID | None
    created_at: datetime
    finished_at: datetime | None

    @property
    def callback_ids(self) -> list[uuid.UUID]:
        return [i for i in (self.on_complete_job, self.on_success_job) if i is not None]


def _callback(value: Any, where: str) -> dict[str, Any] | None:
    """``("type", payload)``, ``sig(...)`` or ``{"type": ..., "payload": ..., **options}``."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        spec = dict(value)
    elif callable(getattr(value, "as_item", None)):
        spec = value.as_item()
    elif isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str):
        spec = {"type": value[0], "payload": value[1]}
    else:
        raise ValueError(f"enqueue_batch: {where} must be (type, payload), a sig() or a dict "
                         f"with 'type', got {value!r}")
    check_item(spec, f"enqueue_batch: {where}")
    refused = {"depends_on", "on_dependency_failure", "idempotency_key"} & {
        k for k, v in spec.items() if v is not None}
    if refused:
        raise ValueError(f"enqueue_batch: {where} waits for the batch; it takes no "
                         f"{' or '.join(sorted(refused))} of its own")
    return spec


def enqueue_batch(items: Iterable[Mapping[str, Any]], *, on_complete: Any = None,
                  on_success: Any = None, description: str = "") -> Batch:
    """Enqueue ``items`` (as ``enqueue_many``) as one batch, all or none, in the caller's
    transaction. ``on_complete``: a job enqueued once every job of the batch has finished
    (completed, failed or cancelled); ``on_success``: once every one has completed (it is
    cancelled when one fails for good, and revived when that one is retried). Each is
    ``(type, payload)``, a ``sig()`` or an ``enqueue_many`` item; its payload gets a
    ``"batch"`` key with the batch's id and counts when it becomes due."""
    if not isinstance(description, str) or len(description) > 200:
        raise ValueError("enqueue_batch: description must be a string of at most 200 "
                         "characters")
    items = list(items)
    for index, item in enumerate(items):
        if isinstance(item, Mapping) and item.get("idempotency_key") is not None:
            raise ValueError(f"enqueue_batch: item {index} has an idempotency_key; a batch's "
                             "jobs are its own (a key could find a job of another batch)")
    callbacks = [(name, _callback(value, name)) for name, value in
                 (("on_complete", on_complete), ("on_success", on_success))]
    builder = _Builder()
    jobs = enqueue_many_items(builder, items, where="enqueue_batch")
    if any(j is None for j in jobs):
        raise ValueError("enqueue_batch: an item's payload was discarded by its schema "
                         "(on_invalid='discard'); a batch cannot count a job that does not "
                         "exist")
    batch = Batch(id=uuid.uuid4(), description=description, total=len(jobs))
    built: dict[str, Job] = {}
    for name, spec in callbacks:
        if spec is None:
            continue
        options = {k: v for k, v in spec.items() if k not in ("type", "payload")}
        payload = spec.get("payload")
        if not jobs and (isinstance(payload, Mapping) or payload is None):
            # Nothing to wait for: due at once, with the (empty) batch's counts.
            payload = {**(payload or {}), "batch": {"id": str(batch.id), "total": 0,
                                                    "pending": 0, "completed": 0,
                                                    "failed": 0, "cancelled": 0}}
        job = builder.build(spec["type"], payload, f"enqueue_batch {name}", options)
        if job is None:
            raise ValueError(f"enqueue_batch: {name}'s payload was discarded by its schema")
        if jobs:  # it waits for every job of the batch
            job.depends_on_refs = list(jobs)
            job.on_dependency_failure = "run" if name == "on_complete" else "cancel"
            job.status, job.wait_token = JobStatus.WAITING, DEPENDENCIES
        built[name] = job
    for job in jobs:
        job.batch_id = batch.id
    batch.on_complete_job = built["on_complete"].id if "on_complete" in built else None
    batch.on_success_job = built["on_success"].id if "on_success" in built else None
    alias = get_store().alias
    with transaction.atomic(using=alias):
        batch.save(using=alias, force_insert=True)
        written = _write([*jobs, *built.values()])
        for name, job in zip(built, written[len(jobs):], strict=True):
            setattr(batch, f"{name}_job", job.id)  # the job its idempotency key found
        if built:
            batch.save(using=alias, update_fields=["on_complete_job", "on_success_job"])
    return batch


def get_batch(batch_id: Any) -> BatchStatus:
    """A batch's status and counts; ``JobNotFound`` for an unknown id."""
    parsed = parse_job_id(batch_id)
    alias = get_store().alias
    batch = Batch.objects.using(alias).filter(id=parsed).first() if parsed else None
    if batch is None:
        raise JobNotFound(f"no batch with id {batch_id!r}")
    return batch_status(batch)


def batch_status(batch: Batch) -> BatchStatus:
    alias = batch._state.db or get_store().alias
    counts = batch_counts(alias, batch)
    finished = counts["pending"] == 0
    finished_at = None
    if finished and batch.total:
        finished_at = Job.objects.using(alias).filter(batch_id=batch.id).aggregate(
            at=Max("completed_at"))["at"]
    return BatchStatus(
        id=batch.id, description=batch.description,
        status="finished" if finished else "running", total=batch.total,
        pending=counts["pending"], completed=counts["completed"], failed=counts["failed"],
        cancelled=counts["cancelled"], on_complete_job=batch.on_complete_job,
        on_success_job=batch.on_success_job, created_at=batch.created_at,
        finished_at=finished_at or (batch.created_at if finished else None))
