"""Handlers the acceptance tests run in real worker processes. Each writes the ledger."""

import os
import time
from dataclasses import dataclass

from django_edgejobs import job

from .models import Run, Span


@job("qa.record", max_attempts=3)
def record(payload, ctx):
    Run.objects.create(job_id=ctx.job_id, attempt=ctx.attempt, pid=os.getpid())
    return {"ok": True}


@job("qa.sleep", max_attempts=3, retry_delay=0)
def sleep(payload, ctx):
    Run.objects.create(job_id=ctx.job_id, attempt=ctx.attempt, pid=os.getpid(), phase="start")
    seconds = payload.get("seconds", 1)
    if ctx.attempt > 1:
        seconds = payload.get("retry_seconds", seconds)
    deadline = time.monotonic() + float(seconds)
    while time.monotonic() < deadline and not ctx.cancelled.is_set():
        time.sleep(0.05)
    Run.objects.create(job_id=ctx.job_id, attempt=ctx.attempt, pid=os.getpid(),
                       phase="cancelled" if ctx.cancelled.is_set() else "done")
    return {"slept": payload.get("seconds", 1)}


@job("qa.noop", max_attempts=3)
def noop(payload, ctx):
    return None


@job("qa.spin", force_kill=True, max_attempts=1)
def spin(payload, ctx):
    """Runs in a child process (force_kill): the tests make it spin, raise, exit or use a
    step (refused in a child)."""
    if payload.get("progress"):
        ctx.set_progress(payload["progress"])
    mode = payload.get("mode")
    if mode == "spin":
        while True:
            pass
    if mode == "step":
        ctx.run("x", lambda: 1)
    if mode == "raise":
        raise ValueError("from the child")
    if mode == "exit":
        os._exit(3)
    if mode == "deps":
        return {"deps": {str(k): v for k, v in ctx.dependency_results().items()}}
    return {"pid": os.getpid()}


@job("qa.steps", max_attempts=3)
def steps(payload, ctx):
    """Two durable steps with a pause between them (the tests kill the worker there)."""
    def step(name):
        Run.objects.create(job_id=ctx.job_id, attempt=ctx.attempt, pid=os.getpid(), phase=name)
        return name

    ctx.run("one", lambda: step("one"))
    if payload.get("pause") and ctx.attempt == 1:
        Run.objects.create(job_id=ctx.job_id, attempt=ctx.attempt, pid=os.getpid(),
                           phase="paused")
        ctx.cancelled.wait(payload["pause"])
    if payload.get("wait"):
        ctx.wait_for(seconds=payload["wait"])
    ctx.run("two", lambda: step("two"))
    return {"done": True}


@job("qa.work", max_attempts=3, retry_delay=0)
def work(payload, ctx):
    """A ledgered job of ``seconds`` (cooperative): start and done rows, one per attempt."""
    Run.objects.create(job_id=ctx.job_id, attempt=ctx.attempt, pid=os.getpid(), phase="start")
    deadline = time.monotonic() + float(payload.get("seconds", 0))
    while time.monotonic() < deadline:
        if ctx.cancelled.wait(min(0.05, max(deadline - time.monotonic(), 0))):
            Run.objects.create(job_id=ctx.job_id, attempt=ctx.attempt, pid=os.getpid(),
                               phase="cancelled")
            return {"cancelled": True}
    Run.objects.create(job_id=ctx.job_id, attempt=ctx.attempt, pid=os.getpid(), phase="done")
    return {"pid": os.getpid()}


@job("qa.poison", max_attempts=2, retry_delay=0)
def poison(payload, ctx):
    """Always raises, or kills its own worker process."""
    Run.objects.create(job_id=ctx.job_id, attempt=ctx.attempt, pid=os.getpid(), phase="start")
    if payload.get("kill"):
        os.kill(os.getpid(), 9)
    raise RuntimeError("poison")


@job("qa.five_steps", max_attempts=3, retry_delay=0)
def five_steps(payload, ctx):
    """Five durable steps; attempt 1 stops (the test kills the worker) after step 3."""
    for n in range(1, 6):
        ctx.run(f"step{n}", lambda n=n: Run.objects.create(
            job_id=ctx.job_id, attempt=ctx.attempt, pid=os.getpid(), phase=f"step{n}").id)
        if n == 3 and ctx.attempt == 1:
            Run.objects.create(job_id=ctx.job_id, attempt=ctx.attempt, pid=os.getpid(),
                               phase="paused")
            ctx.cancelled.wait(120)
    return {"steps": 5}

@dataclass
class Count:
    n: int
    label: str = "count"


@job("qa.typed-child", schema=Count, force_kill=True, max_attempts=1)
def typed_child(payload, ctx):
    """A force_kill handler with a dataclass schema: the child builds the instance."""
    return {"class": type(payload).__name__, "n": payload.n, "label": payload.label,
            "pid": os.getpid()}


class QaBaseException(BaseException):
    """A custom BaseException that is not an Exception (row 21)."""


BASE_EXCEPTIONS = {"cancelled": "asyncio.CancelledError", "generator_exit": "GeneratorExit",
                   "custom": "QaBaseException"}


@job("qa.base_exception", max_attempts=3, retry_delay=0)
def base_exception(payload, ctx):
    """Attempt 1 raises the BaseException named by ``kind``; attempt 2 succeeds."""
    import asyncio

    Run.objects.create(job_id=ctx.job_id, attempt=ctx.attempt, pid=os.getpid(), phase="start")
    if ctx.attempt == 1:
        kind = payload["kind"]
        raise {"cancelled": asyncio.CancelledError, "generator_exit": GeneratorExit,
               "custom": QaBaseException}[kind](f"attempt 1 raises {kind}")
    Run.objects.create(job_id=ctx.job_id, attempt=ctx.attempt, pid=os.getpid(), phase="done")
    return {"kind": payload["kind"]}


@job("qa.base_exception_async", max_attempts=3, retry_delay=0)
async def base_exception_async(payload, ctx):
    """``async def``: attempt 1 raises ``asyncio.CancelledError``; attempt 2 succeeds."""
    import asyncio

    from asgiref.sync import sync_to_async

    await sync_to_async(Run.objects.create)(job_id=ctx.job_id, attempt=ctx.attempt,
                                            pid=os.getpid(), phase="start")
    if ctx.attempt == 1:
        raise asyncio.CancelledError("attempt 1 is cancelled")
    await sync_to_async(Run.objects.create)(job_id=ctx.job_id, attempt=ctx.attempt,
                                            pid=os.getpid(), phase="done")
    return {"kind": "async"}


@job("qa.hostile", max_attempts=3, retry_delay=0)
def hostile(payload, ctx):
    """Attempt 1 raises an error whose text holds a lone surrogate, a NUL and non-BMP text
    (``os.fsdecode`` of a non-UTF-8 file name gives the surrogate); attempt 2 succeeds and
    returns text with the same valid characters."""
    Run.objects.create(job_id=ctx.job_id, attempt=ctx.attempt, pid=os.getpid(), phase="start")
    if ctx.attempt == 1:
        raise OSError(f"cannot open {os.fsdecode(b'report-\xff.csv')} \x00 \U0001d11e")
    Run.objects.create(job_id=ctx.job_id, attempt=ctx.attempt, pid=os.getpid(), phase="done")
    return {"name": payload["name"]}


@job("qa.span", max_attempts=3, retry_delay=0)
def span(payload, ctx):
    """Sleeps ``seconds``; records its start and end on the database's clock (``Span``)."""
    from django_edgejobs.store import get_store

    store = get_store()
    started = store.db_now()
    time.sleep(float(payload.get("seconds", 0)))
    Span.objects.create(job_id=ctx.job_id, key=payload.get("key", ""), started=started,
                        ended=store.db_now())


@job("qa.dag", max_attempts=1)
def dag(payload, ctx):
    """A node of a workflow: records its run (``Run``) and its start and end on the
    database's clock (``Span``, key = its name); fails for good if its dependencies' results
    are not all there (``n_deps`` of them, each the name its dependency returned), or when
    told to (``fail``)."""
    from django_edgejobs import PermanentError
    from django_edgejobs.store import get_store

    store = get_store()
    started = store.db_now()
    Run.objects.create(job_id=ctx.job_id, attempt=ctx.attempt, pid=os.getpid())
    results = ctx.dependency_results()
    if payload.get("fail"):
        raise PermanentError("told to fail")
    if len(results) != payload.get("n_deps", 0) or (
            not payload.get("any_result") and None in results.values()):
        raise PermanentError(f"dependency results {results!r}")
    Span.objects.create(job_id=ctx.job_id, key=payload["name"], started=started,
                        ended=store.db_now())
    return payload["name"]
