"""Celery's canvas, on ``depends_on``: ``sig`` (a job to enqueue: Celery's signature),
``chain`` (one after another), ``group`` (side by side, as a batch) and ``chord`` (a group,
then one job once all of it has completed). Each ``.enqueue()`` writes every job in one
round trip, all or none, in the caller's transaction; a job reads the results of the jobs it
waited for with ``ctx.dependency_results()`` (Celery passes them as arguments instead).

    chain(sig("etl.extract", {...}), sig("etl.transform"), sig("etl.load")).enqueue()
    group(sig("img.resize", {"id": 1}), sig("img.resize", {"id": 2})).enqueue()
    chord([sig("x", {...}), sig("y", {...})], sig("sum")).enqueue()

``chain`` and ``chord`` cancel what comes after a job that fails for good (Celery's
behaviour); ``sig(..., on_dependency_failure="run")`` runs that step of a chain, or the
chord's body, anyway (the body is then the batch's ``on_complete`` callback)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .services.enqueue import OPTION_KEYS, enqueue_many


@dataclass(frozen=True)
class Signature:
    """One job to enqueue: its type, payload and ``enqueue`` options."""

    type: str
    payload: Any = None
    options: Mapping[str, Any] = field(default_factory=dict)

    def as_item(self) -> dict[str, Any]:
        """The ``enqueue_many`` item."""
        return {"type": self.type, "payload": self.payload, **self.options}

    def enqueue(self):
        """Enqueue this one job (as ``enqueue``)."""
        return enqueue_many([self.as_item()])[0]


def sig(type: str, payload: Any = None, **options: Any) -> Signature:
    """A job to enqueue later, in a ``chain``, ``group`` or ``chord`` (Celery's
    ``signature``/``.s()``). Options are those of ``enqueue``; ``depends_on`` is the
    canvas's to set."""
    if not isinstance(type, str):
        raise TypeError(f"sig: the job type must be a string, got {type!r}")
    unknown = set(options) - OPTION_KEYS
    if unknown:
        raise TypeError(f"sig({type!r}): unexpected option(s) {', '.join(sorted(unknown))}")
    if "depends_on" in options:
        raise TypeError(f"sig({type!r}): depends_on is set by chain, group and chord")
    return Signature(type, payload, dict(options))


def _signatures(parts: Iterable[Any], where: str) -> list[Signature]:
    out = list(parts)
    if not out:
        raise ValueError(f"{where}: needs at least one sig()")
    for part in out:
        if not isinstance(part, Signature):
            raise TypeError(f"{where}: expected sig(...), got {part!r}")
    return out


class chain:
    """Jobs one after another: each waits for the one before it to complete."""

    def __init__(self, *signatures: Signature):
        self.signatures = _signatures(signatures, "chain")

    def enqueue(self) -> list:
        """Enqueue the whole chain; returns its jobs in order."""
        items = [s.as_item() for s in self.signatures]
        for i in range(1, len(items)):
            items[i]["depends_on"] = [i - 1]
        return enqueue_many(items)


class group:
    """Jobs side by side, enqueued as one batch (``get_batch`` follows them)."""

    def __init__(self, *signatures: Signature, description: str = ""):
        self.signatures = _signatures(signatures, "group")
        self.description = description

    def enqueue(self):
        """Enqueue the group as a batch; returns the ``Batch`` (its jobs: ``batch.jobs``)."""
        from .services.workflows import enqueue_batch

        return enqueue_batch([s.as_item() for s in self.signatures],
                             description=self.description)


class chord:
    """A group (the header) and a job (the body) that runs once every job of the header has
    completed; the body is cancelled if one fails for good (revived if it is retried)."""

    def __init__(self, header: Iterable[Signature], body: Signature, *,
                 description: str = ""):
        self.header = _signatures(header, "chord")
        if not isinstance(body, Signature):
            raise TypeError(f"chord: the body must be a sig(...), got {body!r}")
        self.body = body
        self.description = description

    def enqueue(self):
        """Enqueue the header as a batch with the body as its ``on_success`` callback (its
        ``on_complete`` one with ``on_dependency_failure="run"``); returns the ``Batch``
        (the body's job id: ``batch.on_success_job``, or ``on_complete_job``)."""
        from .services.workflows import enqueue_batch

        options = dict(self.body.options)
        run_anyway = options.pop("on_dependency_failure", "cancel") == "run"
        body = Signature(self.body.type, self.body.payload, options)
        return enqueue_batch([s.as_item() for s in self.header],
                             **{"on_complete" if run_anyway else "on_success": body},
                             description=self.description)
