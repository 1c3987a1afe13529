"""Every change of a job's status, named once.

Each transition says where it may start (``sources``), where it ends (``target``), which
columns it sets besides ``status`` and ``updated_at``, the event it writes, the signal sent
after its transaction commits, and whether it is fenced by the attempt's lease. The store and
the services take ``sources``, ``target`` and ``event`` from here instead of spelling them
again; the vendors' hot-path SQL (claim, bulk completion) must have the same effects, which
the store contract suite (``tests/store``) checks against this table. The table in
``docs/explanation/states.md`` is rendered from it (``render_table``) and a test keeps the two
equal.
"""

from __future__ import annotations

from dataclasses import dataclass

from .job import JobStatus

PENDING, WAITING, PROCESSING = JobStatus.PENDING, JobStatus.WAITING, JobStatus.PROCESSING
COMPLETED, FAILED, CANCELLED = JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED


@dataclass(frozen=True)
class Transition:
    name: str
    #: Statuses it may start from; empty for a new job.
    sources: tuple[JobStatus, ...]
    target: JobStatus
    #: The JobEvent type it writes (its data is the writer's).
    event: str
    #: Columns it sets besides ``status`` and ``updated_at``.
    sets: tuple[str, ...] = ()
    #: The signal (an attribute of ``django_edgejobs.signals``) sent after commit, if any.
    signal: str = ""
    #: Only under the attempt's lease (``lease_token`` matches, status processing).
    fenced: bool = False
    #: What happens to ``attempts``: "+1" (counted at claim), "-1" (handed back), "0" (reset).
    attempts: str = ""
    #: Who makes it.
    by: str = ""

    def allows(self, status: str) -> bool:
        return status in self.sources


ENQUEUE = Transition("enqueue", (), PENDING, "added", signal="job_enqueued", by="enqueue",
                     sets=("every column",))
CLAIM = Transition("claim", (PENDING,), PROCESSING, "processing", signal="job_started",
                   attempts="+1", by="worker",
                   sets=("lease_owner", "lease_token", "started_at"))
COMPLETE = Transition("complete", (PROCESSING,), COMPLETED, "completed",
                      signal="job_completed", fenced=True, by="worker",
                      sets=("result", "started_at and completed_at (the handler's begin and end)",
                            "lease cleared"))
RETRY = Transition("retry", (PROCESSING,), PENDING, "retried", signal="job_retried",
                   fenced=True, by="worker (a failed attempt, or Retry)",
                   sets=("run_at", "last_error", "error_group", "error_history",
                         "started_at (the handler's begin)", "lease cleared"))
FAIL = Transition("fail", (PROCESSING,), FAILED, "failed", signal="job_failed", fenced=True,
                  by="worker", sets=("started_at and completed_at (the handler's begin and end)",
                                     "last_error", "error_group", "error_history",
                                     "lease cleared"))
RELEASE = Transition("release", (PROCESSING,), PENDING, "released", fenced=True,
                     attempts="-1", by="worker (shutdown, a type it has no handler for)",
                     sets=("run_at", "last_error (unknown type; error_group cleared)",
                           "lease cleared"))
WAIT = Transition("wait", (PROCESSING,), WAITING, "waiting", fenced=True, attempts="-1",
                  by="worker (ctx.wait_*, wait_for_token)",
                  sets=("run_at", "wait_token", "steps", "lease cleared"))
RESUME = Transition("resume", (WAITING,), PENDING, "resumed",
                    by="supervisor (time), complete_token, token timed out or deleted, "
                       "run_job_now", sets=("run_at", "wait_token"))
RECLAIM = Transition("reclaim", (PROCESSING,), PENDING, "reclaimed",
                     by="supervisor (worker silent for WORKER_TIMEOUT, or restarted)",
                     sets=("run_at", "last_error", "error_group", "error_history",
                           "lease cleared"))
RECLAIM_FAIL = Transition("reclaim, no attempt left", (PROCESSING,), FAILED, "reclaimed",
                          by="supervisor", sets=("completed_at", "last_error", "error_group",
                                                 "error_history", "lease cleared"))
REJECT = Transition("reject", (PENDING,), FAILED, "failed", signal="job_failed",
                    by="enqueue with on_invalid='fail' (the schema refused the payload), in "
                       "the enqueue's transaction",
                    sets=("completed_at", "last_error", "error_group", "error_history"))
EXPIRE = Transition("expire", (PENDING,), CANCELLED, "cancelled", by="supervisor (expires_at)",
                    sets=("completed_at",))
CANCEL = Transition("cancel", (PENDING, WAITING), CANCELLED, "cancelled",
                    signal="job_cancelled", by="cancel_job(s), cancel_all_upcoming",
                    sets=("completed_at",))
MANUAL_RETRY = Transition("manual retry", (FAILED, CANCELLED), PENDING, "retried",
                          signal="job_retried", attempts="0", by="retry_job(s)",
                          sets=("run_at", "completed_at", "progress", "expires_at"))
RUN_NOW = Transition("run now", (PENDING,), PENDING, "edited", by="run_job_now",
                     sets=("run_at",))
EDIT = Transition("edit", (PENDING,), PENDING, "edited", by="edit_job",
                  sets=("the edited fields",))
# Work across jobs (``depends_on``, batches; ``store/dependencies.py``). A job waiting for
# its dependencies is ``waiting`` with ``wait_token = DEPENDENCIES``; no time or token
# resumes it.
ENQUEUE_AFTER = Transition("enqueue after dependencies", (), WAITING, "added",
                           signal="job_enqueued", by="enqueue with depends_on",
                           sets=("every column", "wait_token (dependencies)"))
DEPENDENCIES_DONE = Transition(
    "dependencies done", (WAITING,), PENDING, "resumed",
    by="the transaction settling its last dependency (completed, or failed or cancelled "
       "with on_dependency_failure='run')", sets=("run_at", "wait_token"))
DEPENDENCY_FAILED = Transition(
    "dependency failed", (WAITING,), CANCELLED, "cancelled", signal="job_cancelled",
    by="the transaction settling a dependency that failed for good or was cancelled "
       "(on_dependency_failure='cancel'), and so on down", sets=("completed_at", "wait_token"))
REVIVE = Transition("revive", (CANCELLED,), WAITING, "retried",
                    by="retry_job(s) of the dependency whose failure cancelled it",
                    sets=("completed_at", "wait_token (dependencies)"))

#: Every transition, in the order of a job's life.
TRANSITIONS = (ENQUEUE, REJECT, CLAIM, COMPLETE, RETRY, FAIL, RELEASE, WAIT, RESUME, RECLAIM,
               RECLAIM_FAIL, EXPIRE, CANCEL, MANUAL_RETRY, RUN_NOW, EDIT, ENQUEUE_AFTER,
               DEPENDENCIES_DONE, DEPENDENCY_FAILED, REVIVE)

#: The transition each kind of attempt outcome (``store.Finish.kind``) makes.
OUTCOMES = {"completed": COMPLETE, "retry": RETRY, "failed": FAIL, "released": RELEASE,
            "waiting": WAIT}


def render_table() -> str:
    """The transition table as Markdown (``docs/explanation/states.md`` holds this text)."""
    rows = ["| transition | from | to | sets | attempts | event | signal | fenced | by |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for t in TRANSITIONS:
        sources = ", ".join(f"`{s}`" for s in t.sources) or "(new)"
        rows.append(" | ".join([
            f"| {t.name}", sources, f"`{t.target}`", ", ".join(t.sets) or "—",
            t.attempts or "—", f"`{t.event}`", f"`{t.signal}`" if t.signal else "—",
            "yes" if t.fenced else "—", t.by or "—"]) + " |")
    return "\n".join(rows) + "\n"
