"""The worker: claims jobs in batches, runs them on a pool of threads, writes outcomes in
batches. Its heartbeat (which keeps its leases) and its wake-ups (PostgreSQL's listener or
SQLite's commit watcher) run beside it, each on its own thread and database connection. The
scheduler and the maintenance services are not the worker's: ``process.Process`` runs them
beside it. ``run_once()`` does one claim-run-finish pass in the calling thread."""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.db import (
    DatabaseError,
    InterfaceError,
    OperationalError,
    close_old_connections,
    connections,
)

from .. import signals
from ..conf import get_settings
from ..registry import get_registry
from ..store import Finish, get_store
from ..store.claim import JobTypes
from ..store.core import lost_session_state
from ..store.wakeups import CommitWatcher, Listener
from .context import JobContext
from .db import reset_connection, with_connections_closed
from .executor import describe, exception_path, execute, failure, log_outcome, timeout_failure
from .heartbeat import Heartbeat
from .maintenance import reclaim_orphans
from .outcomes import reduced, send_outcome_signal, send_robust
from .service import FunctionService, ServiceLoop, Watcher

if TYPE_CHECKING:
    from ..models import Job

logger = logging.getLogger("django_edgejobs.worker")

_STOP = object()

#: With no batch size set, a worker sizes its claims from the run time of the jobs it ran:
#: the buffer holds about this many seconds of work per thread...
ADAPTIVE_BUFFER_SECONDS = 0.1
#: ...and a claim takes at most this many jobs (or the concurrency, if larger).
ADAPTIVE_MAX_BATCH = 50
#: Tries on a new connection when an outcome write fails for lost session state.
SESSION_RETRIES = 5


class WorkerStartError(RuntimeError):
    """A worker process could not start its threads (``Worker.run``, ``Process.run``): what did
    start is shut down and the ``Worker`` row, if any, marked stopped. The cause is
    ``__cause__``."""

    def __init__(self, worker_id: str, cause: BaseException, threads_started: int):
        self.worker_id, self.threads_started = worker_id, threads_started
        super().__init__(f"worker {worker_id} could not start: {type(cause).__name__}: {cause} "
                         f"(after {threads_started} of its threads started); it is marked stopped")


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def job_types(types: Sequence[str] | None, exclude: Sequence[str] | None) -> JobTypes:
    """The job types a worker claims, checked: names that fit the column, each one a type
    this process has a handler for (a worker limited to a type it cannot run would claim
    jobs only to fail them), none both taken and kept out."""
    from ..services.validation import validate_type

    only = tuple(dict.fromkeys(validate_type(t, where="--type") for t in types or ()))
    out = tuple(dict.fromkeys(validate_type(t, where="--exclude-type") for t in exclude or ()))
    registry = get_registry()
    unknown = [t for t in only if registry.get(t) is None]
    if unknown:
        raise ValueError(f"--type: no handler is registered for job type(s) "
                         f"{', '.join(map(repr, unknown))} in this process")
    both = sorted(set(only) & set(out))
    if both:
        raise ValueError(f"job type(s) {', '.join(map(repr, both))} given to both --type "
                         "and --exclude-type")
    return JobTypes(only, out)


@dataclass(eq=False)
class InFlight:
    job: Job
    ctx: JobContext
    #: Set once an outcome is decided (by the handler, lease loss or shutdown); whoever sets
    #: it owns the outcome, later ones are dropped. A deadline does not settle: a timed-out
    #: thread keeps its job until it returns (see ``_check_deadlines``).
    settled: bool = False
    abandoned: bool = False
    begun: bool = False
    started: float = field(default_factory=time.monotonic)


class Worker:
    def __init__(
        self,
        queues: Sequence[str] | None = None,
        *,
        concurrency: int | None = None,
        batch_size: int | None = None,
        poll_interval: float | None = None,
        burst: bool = False,
        max_jobs: int | None = None,
        shutdown_timeout: float | None = None,
        worker_id: str | None = None,
        stop_when: Callable[[], bool] | None = None,
        types: Sequence[str] | None = None,
        exclude_types: Sequence[str] | None = None,
    ):
        conf = get_settings()
        self.queues = list(queues or conf.QUEUES)
        #: ``runworker --type / --exclude-type``: the job types this worker claims.
        self.types = job_types(types, exclude_types)
        self.concurrency = concurrency or conf.CONCURRENCY
        #: No batch size given: claim ``concurrency`` jobs at first, then size claims by the
        #: jobs' run time (``_learn``). Short jobs get batches of up to ADAPTIVE_MAX_BATCH,
        #: long ones a job per free thread, so a buffered job waits about
        #: ADAPTIVE_BUFFER_SECONDS at most where another worker could have run it.
        self.adaptive = not (batch_size or conf.BATCH_SIZE)
        self.batch_size = batch_size or conf.BATCH_SIZE or self.concurrency
        self._run_time: float | None = None  # moving average of a job's run time, seconds
        self.poll_interval = conf.POLL_INTERVAL if poll_interval is None else poll_interval
        self.burst = burst
        self.max_jobs = max_jobs
        self.shutdown_timeout = (conf.SHUTDOWN_TIMEOUT if shutdown_timeout is None
                                 else shutdown_timeout)
        self.id = worker_id or default_worker_id()
        self.stop_when = stop_when
        self.store = get_store()
        self.registry = get_registry()
        self.heartbeat = Heartbeat(self.id, self.register, self._leases, self._lost_leases)

        self._lock = threading.Lock()
        self._inflight: dict[uuid.UUID, InFlight] = {}
        self._running = 0  # claimed jobs not yet finished: running or buffered
        #: Jobs held at once: the slots, plus a buffer when the batch is larger.
        self.capacity = max(self.concurrency, self.batch_size)
        self._claimed_total = 0
        self._wake = threading.Event()
        self._stopping = threading.Event()
        #: A claim failed: it may have committed all the same (``_release_lost_claims``).
        self._claim_unsure = False
        #: ``_limited_queues``: when it was last read, and what it found.
        self._limited_read: float | None = None
        self._limited: list[str] = []
        self._limited_of: list[str] = []
        self._limited_first = False
        self._services_stop = threading.Event()  # the listener's
        self.loops: list[ServiceLoop] = []  # the heartbeat's, the commit watcher's
        self._work: queue.Queue[Any] = queue.Queue()
        self._done: queue.Queue[Any] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._registered = False
        self._beaten = 0.0
        self.listener: Listener | None = None
        self.exit_code = 0
        #: Set by ``Process``: watches the claim loop's, the completer's and the heartbeat's
        #: connections (``runtime/watchdog.py``).
        self.watchdog: Watcher | None = None

    # -- registration -----------------------------------------------------------------

    def register(self) -> None:
        from ..models import Worker as WorkerRow

        reclaim_orphans(self.id)
        self.store.register_worker(WorkerRow(
            id=self.id, hostname=socket.gethostname(), pid=os.getpid(), queues=self.queues,
            concurrency=self.concurrency,
        ))
        self._registered = True
        self._beaten = time.monotonic()

    # -- one pass, in this thread -----------------------------------------------------

    def run_once(self) -> int:
        """Claim up to a batch of due jobs, run them here one after another, write the
        outcomes. Returns how many jobs ran."""
        if not self._registered:
            self.register()
        elif time.monotonic() - self._beaten >= get_settings().HEARTBEAT_INTERVAL:
            # No heartbeat thread here: beat between passes, so a caller that runs passes
            # for longer than WORKER_TIMEOUT does not get its jobs reclaimed.
            self.heartbeat.run_once()
            self._beaten = time.monotonic()
        jobs = self._claim(self.batch_size)
        results: list[tuple[InFlight, Finish, float]] = []
        for job in jobs:
            entry = InFlight(job, JobContext(job, self.store))
            outcome = self._run_attempt(entry, timer=True)
            results.append((entry, outcome, time.monotonic() - entry.started))
        self._write(results)
        return len(jobs)

    def _run_attempt(self, entry: InFlight, *, timer: bool = False) -> Finish:
        job, ctx = entry.job, entry.ctx
        if signals.job_started.has_listeners():
            send_robust(signals.job_started, job)
        finished = threading.Event()
        if timer and job.timeout:
            threading.Thread(target=_watch_deadline, args=(ctx, finished), daemon=True).start()
        try:
            return execute(self.registry, job, ctx)
        finally:
            finished.set()

    def _write(self, results: list[tuple[InFlight, Finish, float]]) -> None:
        """Commit outcomes, then report them. Lost connections, lock conflicts and lost session
        state (a pooler's) are retried until the database takes the batch. An outcome the
        database refuses (a data error) is written alone and, if refused again, written
        ``reduced``: the same outcome without the values refused (a completed job stays
        completed). One that cannot be stored even so is left ``processing``, never failed:
        it is handed back when this worker restarts or stops heart-beating."""
        if not results:
            return
        try:
            accepted = self._finish_retrying([o for _, o, _ in results])
        except Exception as exc:  # a data error, or a value the database driver cannot adapt
            if len(results) > 1:
                for item in results:
                    self._write([item])
                return
            entry, outcome, duration = results[0]
            logger.error("job=%s: the database refused its %s outcome (%s); storing it without "
                         "the values refused", entry.job.id, outcome.kind, exc)
            results = [(entry, reduced(outcome, exc), duration)]
            try:
                accepted = self._finish_retrying([results[0][1]])
            except Exception:
                logger.exception("job=%s: cannot store its outcome even reduced; it stays "
                                 "processing until this worker restarts or stops "
                                 "heart-beating, then it is handed back", entry.job.id)
                return
        self.heartbeat.count_done(len(accepted))
        for entry, outcome, duration in results:
            ok = outcome.job_id in accepted
            log_outcome(entry.job, outcome, duration, ok)
            if ok:
                send_outcome_signal(entry.job, outcome)

    def _finish_retrying(self, outcomes: list[Finish]) -> set[uuid.UUID]:
        """``store.finish``, retried while the database cannot take it: without end for a lost
        connection or a lock timeout, ``SESSION_RETRIES`` times on a new connection for lost
        session state (e.g. a prepared statement a pooler's server connection does not
        have). Anything else is raised."""
        backoff, session_errors = 0.1, 0
        while True:
            try:
                return self.store.finish(outcomes)
            except (OperationalError, InterfaceError) as exc:  # connection lost, lock timeout
                logger.warning("cannot write %d outcome(s) (%s); retrying in %.1fs",
                               len(outcomes), exc, backoff)
            except DatabaseError as exc:
                session_errors += 1
                if not lost_session_state(exc) or session_errors > SESSION_RETRIES:
                    raise
                logger.warning("cannot write %d outcome(s): the connection lost its session "
                               "state (%s); retrying on a new connection", len(outcomes), exc)
            reset_connection(self.store.alias)
            time.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    # -- the threaded loop ------------------------------------------------------------

    def request_stop(self) -> None:
        """Stop claiming; running jobs get ``shutdown_timeout`` to finish."""
        if not self._stopping.is_set():
            logger.info("worker %s: stopping (waiting up to %.0fs for %d running job(s))",
                        self.id, self.shutdown_timeout, self._running)
        self._stopping.set()
        self._wake.set()

    def run(self, beside: Sequence[ServiceLoop] = ()) -> int:
        """Run until stopped (or, with ``burst``, until nothing is due). Returns the exit code.

        ``beside``: loops of other services (``Process`` passes the scheduler's and the
        supervisor's) to start once this worker is registered and its threads run, and to stop
        when it stops: one start-up that either succeeds whole or stops what it started."""
        if self.watchdog is not None:
            self.watchdog.watch("claim loop", self.store.alias)
        self.register()
        logger.info("worker %s: queues=%s concurrency=%d batch=%s%s", self.id,
                    ",".join(self.queues), self.concurrency,
                    f"adaptive ({self.concurrency}-{max(self.concurrency, ADAPTIVE_MAX_BATCH)})"
                    if self.adaptive else self.batch_size,
                    "".join(f" {label}={','.join(names)}" for label, names in
                            (("types", self.types.only), ("exclude-types", self.types.exclude))
                            if names))
        try:
            try:
                self._start_services()
                for loop in beside:
                    self._start_loop(loop)
            except Exception as exc:  # e.g. "can't start new thread": stop what did start
                raise WorkerStartError(self.id, exc, len(self._threads)) from exc
            self._loop()
        finally:
            self._shutdown()  # also deregisters: the row is marked stopped
            if self.watchdog is not None:
                self.watchdog.forget()
        return self.exit_code

    def _start_services(self) -> None:
        self._spawn("completer", self._completer_loop)
        for n in range(self.concurrency):
            self._spawn(f"slot-{n}", self._slot_loop)
        self._start_loop(ServiceLoop("heartbeat", [self.heartbeat], alias=self.store.alias,
                                     watchdog=self.watchdog))
        if self.store.supports_notify:
            self.listener = Listener(self.store.alias, self.queues, self._wake.set,
                                     self._services_stop)
            self._spawn("listener", self.listener.run)
        elif self.store.watches_commits and get_settings().SQLITE_WATCH_INTERVAL > 0:
            watcher = CommitWatcher(self.store.alias)

            def watch() -> bool:
                changed = watcher.run_once()
                if changed:
                    self._wake.set()
                return changed

            self._start_loop(ServiceLoop("watcher", [FunctionService(
                "watcher", get_settings().SQLITE_WATCH_INTERVAL, watch, close=watcher.close)],
                alias=self.store.alias, watchdog=self.watchdog))

    def _start_loop(self, loop: ServiceLoop) -> None:
        self.loops.append(loop)
        self._threads.append(loop.start())

    def _spawn(self, name: str, target: Callable[[], None]) -> threading.Thread:
        thread = threading.Thread(target=with_connections_closed(target),
                                  name=f"edgejobs-{name}", daemon=True)
        thread.start()
        self._threads.append(thread)
        return thread

    def _free_slots(self) -> int:
        """How many jobs to claim now. With a buffer (batch larger than the concurrency) the
        worker claims when the buffer runs low, a batch at a time, not a job per free slot:
        every claim is a commit."""
        with self._lock:
            free = self.capacity - self._running
            if self.max_jobs is not None:
                free = min(free, self.max_jobs - self._claimed_total)
            buffered = self._running - self._begun()
            if self.capacity > self.concurrency and buffered > 0 and free < self.batch_size // 2:
                return 0
            return max(free, 0)

    def _learn(self, seconds: float) -> None:
        """Resize the claims from one more job's run time (the caller holds the lock).

        The average moves a fifth of the way to each new run time: one long job shrinks the
        batch at once (a 1 s job after no-op jobs brings it back to the concurrency), and a
        run of short jobs grows it again within some twenty jobs. A set batch size stays."""
        if not self.adaptive:
            return
        average = seconds if self._run_time is None else self._run_time * 0.8 + seconds * 0.2
        self._run_time = average
        extra = self.concurrency * ADAPTIVE_BUFFER_SECONDS / max(average, 1e-6)
        self.batch_size = max(self.concurrency,
                              min(self.concurrency + int(extra), ADAPTIVE_MAX_BATCH))
        self.capacity = self.batch_size

    def _begun(self) -> int:
        return sum(1 for e in self._inflight.values() if e.begun and not e.settled)

    def _loop(self) -> None:
        backoff = 0.0
        while not self._stopping.is_set():
            if self.stop_when is not None and self.stop_when():
                break
            self._wake.clear()
            self._check_deadlines()
            with self._lock:
                # Nothing in flight *before* the claim: every outcome (a retry due at once
                # included) was written before it, so an empty claim means nothing is due.
                was_idle = self._running == 0 and not self._inflight
            free = self._free_slots()
            claimed: list[Job] = []
            if free:
                try:
                    if self._claim_unsure:
                        self._release_lost_claims()
                    claimed = self._claim(min(free, self.batch_size))
                    backoff = 0.0
                except DatabaseError as exc:
                    # The claim may have committed with its answer lost: hand back whatever
                    # it took before the next one (``_release_lost_claims``).
                    self._claim_unsure = True
                    backoff = min(max(backoff * 2, 0.2), 5.0)
                    logger.warning("claim failed (%s); retrying in %.1fs", exc, backoff)
                    reset_connection(self.store.alias)
                    self._stopping.wait(backoff)
                    continue
                self._dispatch(claimed)
                if len(claimed) == min(free, self.batch_size):
                    continue  # there may be more due right now
            with self._lock:
                idle = self._running == 0 and not self._inflight
                exhausted = self.max_jobs is not None and self._claimed_total >= self.max_jobs
            if (self.burst and not claimed and idle and was_idle) or (exhausted and idle):
                break
            self._wake.wait(self._wait_time())

    def _claim(self, limit: int) -> list[Job]:
        """Up to ``limit`` due jobs: the plain claim, and for queues that hold jobs with a
        concurrency or rate limit, the limited claim too (``store/limits.py``). The two take
        turns at going first, so neither kind of job starves the other."""
        limited = self._limited_queues()
        if not limited:
            return self.store.claim(self.id, self.queues, limit, self.types)
        self._limited_first = not self._limited_first

        def plain(n: int) -> list[Job]:
            return self.store.claim(self.id, self.queues, n, self.types)

        def limits(n: int) -> list[Job]:
            return self.store.claim_limited(self.id, limited, n, self.types)

        jobs: list[Job] = []
        for claim in (limits, plain) if self._limited_first else (plain, limits):
            if len(jobs) < limit:
                jobs += claim(limit - len(jobs))
        return jobs

    def _limited_queues(self) -> list[str]:
        """This worker's queues that hold limited jobs, read again once per poll interval
        (a queue becomes limited when such a job is first enqueued into it)."""
        now = time.monotonic()
        if (self._limited_read is None or now - self._limited_read >= self.poll_interval
                or self._limited_of != self.queues):
            self._limited = self.store.limited_queues(self.queues)
            self._limited_read, self._limited_of = now, list(self.queues)
        return self._limited

    def _release_lost_claims(self) -> None:
        """After a failed claim: jobs leased to this worker under a lease it does not hold
        (the claim committed, its answer was lost with the connection) go back to pending,
        without using an attempt. Left alone they would stay ``processing`` for as long as
        this worker beats. Claims are made on this thread only, so every lease of this
        worker that no entry in flight holds is such a job."""
        with self._lock:
            known = {entry.job.lease_token for entry in self._inflight.values()}
        released = self.store.release_unknown(self.id, known)
        self._claim_unsure = False
        if released:
            logger.warning("a claim's answer was lost with its connection: %d job(s) it took "
                           "handed back (%s)", len(released),
                           ", ".join(str(job_id) for job_id in released))

    def _wait_time(self) -> float:
        wait = self.poll_interval
        now = time.monotonic()
        with self._lock:
            for entry in self._inflight.values():
                if (entry.ctx.deadline is not None and not entry.settled
                        and not entry.ctx.timed_out):
                    wait = min(wait, max(entry.ctx.deadline - now, 0.0) + 0.001)
        return wait

    def _dispatch(self, jobs: list[Job]) -> None:
        with self._lock:
            for job in jobs:
                entry = InFlight(job, JobContext(job, self.store))
                self._inflight[job.id] = entry
                self._running += 1
                self._claimed_total += 1
                self._work.put(entry)

    def _slot_loop(self) -> None:
        while True:
            entry = self._work.get()
            if entry is _STOP:
                return
            with self._lock:
                if entry.settled:  # released at shutdown before it started
                    continue
                entry.begun = True
            entry.started = time.monotonic()
            entry.ctx.begin()
            if entry.ctx.deadline is not None:
                self._wake.set()  # the loop must wake for this attempt's deadline
            try:
                outcome = self._run_attempt(entry)
            except BaseException as exc:  # the executor's own failure: never leave the job
                logger.exception("job=%s: the attempt raised %s outside the handler; failing "
                                 "the attempt", entry.job.id, type(exc).__name__)
                outcome = failure(entry.job, entry.ctx, describe(exc), traceback.format_exc(),
                                  exception=exception_path(exc))
            finally:
                if any(c.errors_occurred for c in connections.all(initialized_only=True)):
                    close_old_connections()
            with self._lock:
                mine = not entry.settled
                entry.settled = True
                if not entry.abandoned:
                    self._running -= 1
                self._learn(time.monotonic() - entry.started)
            if mine and outcome is not None:
                self._done.put((entry, outcome, time.monotonic() - entry.started))
            self._wake.set()
            if entry.abandoned:
                return  # a replacement slot already took this thread's place

    def _forget(self, entry: InFlight) -> None:
        """Drop a finished entry from the jobs in flight (the caller holds the lock), unless
        its job is in flight again under a newer claim: a retry due at once can be claimed
        the moment its outcome commits, before this runs. Dropping that newer entry (by job
        id) hid the running attempt from its deadline, its heartbeat and the shutdown."""
        if self._inflight.get(entry.job.id) is entry:
            del self._inflight[entry.job.id]

    def _settle(self, entry: InFlight, outcome: Finish | None, *, free_slot: bool) -> None:
        """Decide an entry's outcome from outside its slot thread (lease loss, shutdown).

        With ``free_slot`` the entry stops counting against capacity at once; if its handler
        is running, that thread is abandoned and a new slot thread takes its place."""
        replace = False
        with self._lock:
            if entry.settled:
                return
            entry.settled = True
            entry.ctx.cancelled.set()
            if free_slot:
                self._running -= 1
                if entry.begun:
                    entry.abandoned = replace = True
        if outcome is not None:
            self._done.put((entry, outcome, time.monotonic() - entry.started))
        else:
            with self._lock:
                self._forget(entry)
        if replace:
            self._spawn("slot", self._slot_loop)  # the old thread leaves when its handler ends

    def _check_deadlines(self) -> None:
        """Mark the attempts past their deadline timed out: ``ctx.timed_out`` and
        ``ctx.cancelled`` are set. No outcome is decided here. A thread cannot be stopped, so
        a timed-out attempt keeps its job (``processing``, under its lease, heart-beaten) and
        its slot until the handler returns; its slot then writes the timeout failure, and
        only then can the retry start: two copies of a job never run at once. A ``force_kill``
        handler's slot kills the child when it sees ``ctx.cancelled`` and returns at once."""
        now = time.monotonic()
        with self._lock:
            late = [e for e in self._inflight.values()
                    if not e.settled and not e.ctx.timed_out
                    and e.ctx.deadline is not None and now >= e.ctx.deadline]
        for entry in late:
            try:
                if entry.ctx.deadline is None or not entry.ctx.deadline_reached():
                    continue  # an on_timeout callback extended the deadline
            except Exception:  # never let one job's deadline stop the worker
                logger.exception("job=%s: deadline handling failed", entry.job.id)
                entry.ctx.expire()
            job, job_type = entry.job, self.registry.get(entry.job.type)
            limit = f"its timeout of {job.timeout:g}s" if job.timeout else "its deadline"
            if job_type is not None and job_type.force_kill:
                logger.warning("job=%s exceeded %s; killing its child process", job.id, limit)
            else:
                logger.warning("job=%s exceeded %s; the thread cannot be stopped: the job stays "
                               "processing and its retry waits until the handler returns "
                               "(it should stop at ctx.cancelled; force_kill=True on the job "
                               "type kills it at the deadline)", job.id, limit)

    def _leases(self) -> dict[uuid.UUID, uuid.UUID]:
        with self._lock:
            return {e.job.id: e.job.lease_token for e in self._inflight.values()  # type: ignore[misc]
                    if not e.settled}

    def _lost_leases(self, lost: set[uuid.UUID]) -> None:
        with self._lock:
            entries = [self._inflight[j] for j in lost if j in self._inflight]
        for entry in entries:
            self._settle(entry, None, free_slot=True)

    def _completer_loop(self) -> None:
        if self.watchdog is not None:
            self.watchdog.watch("completer", self.store.alias)
        while True:
            first = self._done.get()
            batch = [] if first is _STOP else [first]
            while len(batch) < 500:
                try:
                    item = self._done.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    first = _STOP
                    break
                batch.append(item)
            self._write(batch)
            with self._lock:
                for entry, _, _ in batch:
                    self._forget(entry)
            self._wake.set()
            if first is _STOP:
                return

    # -- shutdown ---------------------------------------------------------------------

    def _release(self, entry: InFlight, reason: str, *, free_slot: bool = False) -> None:
        release = Finish(job_id=entry.job.id, lease_token=entry.job.lease_token,  # type: ignore[arg-type]
                         kind="released", attempt=entry.job.attempts,
                         event_data={"attempt": entry.job.attempts, "reason": reason})
        self._settle(entry, release, free_slot=free_slot)

    def _shutdown(self) -> None:
        self._stopping.set()
        with self._lock:
            buffered = [e for e in self._inflight.values() if not e.begun and not e.settled]
        for entry in buffered:  # claimed but never started: hand back at once
            self._release(entry, "shutdown", free_slot=True)
        deadline = time.monotonic() + self.shutdown_timeout
        while time.monotonic() < deadline:
            with self._lock:
                if self._running == 0:
                    break
            self._wake.clear()
            self._check_deadlines()
            self._wake.wait(min(0.1, max(deadline - time.monotonic(), 0)))
        with self._lock:
            unfinished = [e for e in self._inflight.values() if not e.settled]
        for entry in unfinished:
            if entry.ctx.timed_out:  # its attempt is used: record the timeout, do not release
                logger.warning("job=%s: its timed-out handler is still running at shutdown; "
                               "recording the timeout", entry.job.id)
                outcome = timeout_failure(entry.job, entry.ctx)
                outcome.events = list(entry.ctx.events)
                self._settle(entry, outcome, free_slot=False)
                continue
            logger.warning("job=%s did not finish within the shutdown timeout; releasing it",
                           entry.job.id)
            self._release(entry, "shutdown")
        for _ in range(self.concurrency):
            self._work.put(_STOP)
        self._done.put(_STOP)
        for thread in self._threads:
            if thread.name == "edgejobs-completer":
                thread.join(timeout=60)
        self._services_stop.set()
        for loop in self.loops:
            loop.stop()
        for loop in self.loops:  # a late heartbeat must not revive the row we stop
            loop.join(timeout=10)
        for thread in self._threads:
            if thread.name == "edgejobs-listener":
                thread.join(timeout=10)
        try:
            self.store.stop_worker(self.id)
        except DatabaseError as exc:
            logger.warning("could not mark worker %s stopped: %s", self.id, exc)
        connections.close_all()
        logger.info("worker %s: stopped", self.id)


def _watch_deadline(ctx: JobContext, finished: threading.Event) -> None:
    """For attempts run in the caller's thread: at the deadline, run the ``on_timeout``
    callbacks and, unless they extend it, mark the attempt timed out."""
    while not finished.is_set():
        if ctx.deadline is None:
            if finished.wait(0.01):
                return
            continue
        remaining = ctx.deadline - time.monotonic()
        if remaining > 0:
            finished.wait(remaining)
            continue
        if ctx.deadline_reached():
            return
