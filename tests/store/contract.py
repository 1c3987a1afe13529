"""The job-store contract: what every store (the portable ORM ``Store`` and the vendor store of
the database the run uses) must do, as data the tests in ``test_contract.py`` walk.

- ``build_job(state)``: a job row in one of ``STATES``, written with the ORM, backdated
  (never a sleep), with no events.
- ``VERBS``: each store verb, applied to one job; ``ALLOWED``: the states it acts on. From any
  other state the verb is refused: it writes nothing (``snapshot`` before == after).
- ``EFFECTS`` (in each ``Verb``): the exact columns an allowed verb changes and the exact
  events it writes; every other column must be left as it was.
- ``outcome(kind, job)``: the ``Finish`` the runtime would write for that kind (the event data
  of ``runtime/executor.py``), shared by the table, the fencing and the bulk tests.
- ``normalized(...)``: rows and events without ids and moments, to compare two runs.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.db import connections
from django.db.models import F
from django.utils import timezone

from django_edgejobs.fingerprints import error_group
from django_edgejobs.models import Job, JobEvent, Queue, RateStart, WaitToken, Worker
from django_edgejobs.store.base import Finish, Store
from django_edgejobs.store.claim import JobTypes

ALIAS = "default"
TYPE = "t.contract"
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
OWNER = "w-1"  # the worker holding the lease of a ``processing`` row
CLAIMER = "w-2"  # the worker that claims in the table
STALE = uuid.UUID("00000000-0000-4000-8000-00000000dead")  # a lease nobody holds

JOB_FIELDS = [f.attname for f in Job._meta.concrete_fields]
TOKEN_FIELDS = ["id", "job_id", "status", "output", "timeout_at", "tags", "created_at",
                "completed_at"]


# -- the stores -----------------------------------------------------------------------------


def vendor_store_class(vendor: str) -> type[Store] | None:
    if vendor == "postgresql":
        from django_edgejobs.store.postgres import PostgresStore

        return PostgresStore
    if vendor == "sqlite":
        from django_edgejobs.store.sqlite import SQLiteStore

        return SQLiteStore
    return None


def store_classes(alias: str = ALIAS) -> list[type[Store]]:
    """The stores to run on this database: the portable one, and the vendor's (only the one
    matching the database; ``get_store`` picks it)."""
    vendor = vendor_store_class(connections[alias].vendor)
    return [Store] + ([vendor] if vendor else [])


def is_portable(store: Store) -> bool:
    return type(store) is Store


def db_clock(alias: str = ALIAS) -> datetime:
    """The moment, on the clock the stores' ``Now()`` reads, at full precision: this host's
    on SQLite (``models.clock``), the server's ``clock_timestamp()`` on PostgreSQL (a
    statement after this one has a ``statement_timestamp()`` no earlier)."""
    conn = connections[alias]
    if conn.vendor == "postgresql":
        with conn.cursor() as cursor:
            cursor.execute("SELECT clock_timestamp()")
            return cursor.fetchone()[0]
    return timezone.now()


# -- rows in each state ---------------------------------------------------------------------

STATES = [
    "pending_due",      # pending, run_at passed
    "pending_later",    # pending, run_at ahead
    "pending_expired",  # pending and due, but expires_at passed
    "waiting_due",      # waiting for a time that has come
    "waiting_later",    # waiting for a time ahead
    "waiting_token",    # waiting for a token (its run_at passed: the moment it went waiting)
    "processing",       # leased to OWNER, attempt 2 of 3 (attempt 1 failed)
    "completed",        # finished two days ago
    "failed",
    "cancelled",
]

FIRST_ERROR = {"attempt": 1, "error": "RuntimeError: first", "traceback": "tb1",
               "at": "2020-01-01T00:00:00+00:00"}


def build_job(state: str, *, alias: str = ALIAS, queue: str = "default",
              **fields: Any) -> Job:
    """One job row in ``state``, with no events; ``fields`` override the state's columns."""
    now = timezone.now()
    row: dict[str, Any] = dict(type=TYPE, queue=queue, payload={"n": 1}, tags=["contract"],
                               created_at=now - 2 * HOUR, updated_at=now - 2 * HOUR,
                               run_at=now - HOUR)
    if state == "pending_later":
        row.update(run_at=now + HOUR)
    elif state == "pending_expired":
        row.update(expires_at=now - HOUR / 2)
    elif state in ("waiting_due", "waiting_later", "waiting_token"):
        row.update(status="waiting", steps={"s1": 1},
                   run_at=now + HOUR if state == "waiting_later" else now - HOUR / 2)
    elif state == "processing":
        row.update(status="processing", attempts=2, lease_owner=OWNER, lease_token=uuid.uuid4(),
                   started_at=now - timedelta(minutes=1), steps={"s1": 1}, progress=10,
                   last_error=FIRST_ERROR["error"], error_history=[FIRST_ERROR])
    elif state == "completed":
        row.update(status="completed", attempts=1, result={"r": 1},
                   started_at=now - 2 * DAY - HOUR, completed_at=now - 2 * DAY)
    elif state == "failed":
        row.update(status="failed", attempts=3, last_error="RuntimeError: last",
                   error_history=[FIRST_ERROR], started_at=now - 2 * DAY - HOUR,
                   completed_at=now - 2 * DAY)
    elif state == "cancelled":
        row.update(status="cancelled", completed_at=now - 2 * DAY)
    elif state != "pending_due":
        raise ValueError(state)
    if state in ("completed", "failed", "cancelled"):
        row.update(created_at=now - 3 * DAY, updated_at=now - 2 * DAY, run_at=now - 3 * DAY)
    row.update(fields)
    job = Job(**row)
    job.save(using=alias, force_insert=True)
    if state == "waiting_token":
        token = make_token(job, timeout_at=now + HOUR, alias=alias)
        Job.objects.using(alias).filter(id=job.id).update(wait_token=token.id)
        job.wait_token = token.id
    return job


def make_token(job: Job, *, timeout_at: datetime | None = None, alias: str = ALIAS,
               **fields: Any) -> WaitToken:
    token = WaitToken(job_id=job.id, timeout_at=timeout_at,
                      created_at=timezone.now() - HOUR, **fields)
    token.save(using=alias, force_insert=True)
    return token


def make_worker(worker_id: str, *, beat_ago: timedelta, alias: str = ALIAS,
                stopped: bool = False) -> Worker:
    at = timezone.now() - beat_ago
    worker = Worker(id=worker_id, hostname="h", pid=1, queues=["default"], concurrency=1,
                    started_at=at, last_heartbeat=at, stopped_at=at if stopped else None)
    worker.save(using=alias, force_insert=True)
    return worker


# -- snapshots ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """Everything stored about one job: its row (None once deleted), whether ``result`` is
    SQL NULL (not JSON null), its events (id, type, data, created_at) and its tokens."""

    row: dict[str, Any] | None
    result_is_sql_null: bool
    events: list[tuple[int, str, Any, datetime]]
    tokens: list[dict[str, Any]]

    @property
    def event_pairs(self) -> list[tuple[str, Any]]:
        return [(kind, data) for _, kind, data, _ in self.events]


def snapshot(job_id: uuid.UUID, alias: str = ALIAS) -> Snapshot:
    jobs = Job.objects.using(alias).filter(id=job_id)
    return Snapshot(
        row=jobs.values(*JOB_FIELDS).first(),
        result_is_sql_null=jobs.filter(result__isnull=True).exists(),
        events=list(JobEvent.objects.using(alias).filter(job_id=job_id).order_by("id")
                    .values_list("id", "type", "data", "created_at")),
        tokens=list(WaitToken.objects.using(alias).filter(job_id=job_id)
                    .order_by("created_at", "id").values(*TOKEN_FIELDS)),
    )


# -- outcomes -------------------------------------------------------------------------------

RESULT = {"answer": 42, "text": "é ✓", "list": [1, 2.5, None, True], "nested": {"b": 1, "a": 2}}
ERROR = "RuntimeError: boom"
RETRY_DELAY = 30.0
STEPS = {"s1": 1, "__wait:0": "2030-01-01T00:00:00+00:00"}
NO_HANDLER = "UnknownJobType: no handler for t.contract in w-1"


def history(attempt: int) -> list[dict[str, Any]]:
    return [FIRST_ERROR, {"attempt": attempt, "error": ERROR, "traceback": "Traceback: boom",
                          "at": "2030-01-01T00:00:00+00:00", "exception": "builtins.Runtime"}]


def outcome(kind: str, job: Job, lease: uuid.UUID | None = None, *, attempt: int | None = None,
            until: datetime | None = None, wait_token: str = "", result: Any = RESULT,
            events: list[tuple[str, dict[str, Any]]] | None = None) -> Finish:
    """The ``Finish`` the runtime writes for ``kind`` (completed, retry, failed, waiting,
    released; released_later: released with a delay and an error, as for a job type the
    worker has no handler for), with the event data of ``runtime/executor.py`` and
    ``runtime/worker.py``. ``lease``: default the job's own (or STALE when it has none)."""
    lease = lease or job.lease_token or STALE
    a = job.attempts if attempt is None else attempt
    base: dict[str, Any] = dict(job_id=job.id, lease_token=lease, kind=kind, attempt=a,
                                events=list(events or []))
    if kind == "completed":
        return Finish(**base, result=result, event_data={"attempt": a})
    if kind == "retry":
        return Finish(**base, error=ERROR, traceback="Traceback: boom", delay=RETRY_DELAY,
                      error_history=history(a),
                      event_data={"attempt": a, "error": ERROR, "delay": RETRY_DELAY})
    if kind == "failed":
        return Finish(**base, error=ERROR, traceback="Traceback: boom",
                      error_history=history(a),
                      event_data={"attempt": a, "error": ERROR, "permanent": False})
    if kind == "waiting":
        return Finish(**base, until=until, wait_token=wait_token, steps=dict(STEPS),
                      event_data={"attempt": a, "token": wait_token or None,
                                  "until": until.isoformat() if until else None})
    if kind == "released":
        return Finish(**base, event_data={"attempt": a, "reason": "shutdown"})
    if kind == "released_later":
        base["kind"] = "released"
        return Finish(**base, delay=RETRY_DELAY, error=NO_HANDLER,
                      event_data={"attempt": a, "reason": "unknown_type",
                                  "worker": job.lease_owner, "delay": RETRY_DELAY})
    raise ValueError(kind)


# -- matchers for expected columns ------------------------------------------------------------


@dataclass
class Case:
    """One verb applied to one job: what the checks may look at."""

    store: Store
    job: Job
    state: str
    extra: dict[str, Any]
    before: Snapshot
    after: Snapshot
    returned: Any
    t0: datetime  # the clock just before the verb
    t1: datetime  # ... and just after

    @property
    def old(self) -> dict[str, Any]:
        assert self.before.row is not None
        return self.before.row


class Matcher:
    def matches(self, value: Any, name: str, case: Case) -> bool:
        raise NotImplementedError


@dataclass(frozen=True)
class Moment(Matcher):
    """A moment the verb wrote from the database clock: between the clock just before and
    just after it, plus ``seconds``; at full precision (no truncation to ms or s)."""

    seconds: float = 0.0

    def matches(self, value: Any, name: str, case: Case) -> bool:
        shift = timedelta(seconds=self.seconds)
        return isinstance(value, datetime) and case.t0 + shift <= value <= case.t1 + shift

    def __repr__(self) -> str:
        return f"now+{self.seconds:g}s" if self.seconds else "now"


NOW = Moment()


class _NewLease(Matcher):
    def matches(self, value: Any, name: str, case: Case) -> bool:
        return isinstance(value, uuid.UUID) and value != case.old[name]

    def __repr__(self) -> str:
        return "<a new lease token>"


NEW_LEASE = _NewLease()


@dataclass(frozen=True)
class From(Matcher):
    """A value computed from the case (the old row, the verb's return, what was prepared)."""

    fn: Callable[[Case], Any]
    text: str = "computed"

    def matches(self, value: Any, name: str, case: Case) -> bool:
        return value == self.fn(case)

    def __repr__(self) -> str:
        return self.text


@dataclass(frozen=True)
class Appended(Matcher):
    """``error_history`` with one entry appended: attempt, error (``{owner}``/``{attempt}``
    filled from the old row), empty traceback and an ISO ``at``."""

    error: str

    def matches(self, value: Any, name: str, case: Case) -> bool:
        if not isinstance(value, list) or value[:-1] != case.old[name]:
            return False
        last = dict(value[-1])
        at = last.pop("at", None)
        return (isinstance(at, str) and datetime.fromisoformat(at) is not None
                and last == {"attempt": case.old["attempts"], "traceback": "",
                             "error": self.error.format(**case.old)})

    def __repr__(self) -> str:
        return f"<history + {self.error!r}>"


def expected_value(spec: Any, name: str, case: Case) -> Any:
    return spec.fn(case) if isinstance(spec, From) else spec


# -- the verbs ------------------------------------------------------------------------------

Events = list[tuple[str, Any]]  # (type, data or From)


@dataclass(frozen=True)
class Verb:
    """A store verb applied to one job.

    ``run(store, job, extra)`` calls it and returns what it returned; ``took(returned, job)``
    says whether that return reports the job acted on (None: the return does not say).
    When allowed: the columns in ``changes`` take these values (``updated_at`` is stamped
    now unless ``writes`` is False), the others keep theirs, and exactly ``events`` are
    written. ``prepare(store, job)`` sets the scene before the ``before`` snapshot.
    ``touches_tokens``: the verb changes tokens even when the job is not acted on."""

    run: Callable[[Store, Job, dict[str, Any]], Any]
    took: Callable[[Any, Job], bool | None]
    changes: dict[str, Any] = field(default_factory=dict)
    events: Events = field(default_factory=list)
    prepare: Callable[[Store, Job], dict[str, Any]] | None = None
    deletes: bool = False
    writes: bool = True
    touches_tokens: bool = False
    check: Callable[[Case], None] | None = None


def _accepted(returned: Any, job: Job) -> bool:
    return job.id in returned


LEASE_CLEARED = {"lease_token": None, "lease_owner": ""}


def _finish(kind: str) -> Callable[[Store, Job, dict[str, Any]], Any]:
    def run(store: Store, job: Job, extra: dict[str, Any]) -> Any:
        return store.finish([outcome(kind, job, until=extra.get("until"),
                                     wait_token=extra.get("token", ""))])

    return run


def _prepare_until(store: Store, job: Job) -> dict[str, Any]:
    return {"until": timezone.now() + 2 * HOUR}


def _prepare_wait_token(store: Store, job: Job) -> dict[str, Any]:
    until = timezone.now() + 2 * HOUR
    return {"until": until, "token": make_token(job, timeout_at=until).id}


def _prepare_token(store: Store, job: Job) -> dict[str, Any]:
    """The token the job waits for, or (other states) a waiting token of the job."""
    return {"token": job.wait_token or make_token(job, timeout_at=timezone.now() + HOUR).id}


def _prepare_timed_out_token(store: Store, job: Job) -> dict[str, Any]:
    """The job's awaited token (or a new token of the job) with its timeout passed."""
    token = job.wait_token or make_token(job).id
    WaitToken.objects.using(store.alias).filter(id=token).update(
        timeout_at=timezone.now() - timedelta(minutes=1))
    return {"token": token}


def _prepare_dead_worker(store: Store, job: Job) -> dict[str, Any]:
    make_worker(OWNER, beat_ago=timedelta(minutes=10), alias=store.alias)
    return {}


def _waiting_event(c: Case) -> dict[str, Any]:
    until = c.extra["until"]
    return {"attempt": c.old["attempts"], "token": c.extra.get("token") or None,
            "until": until.isoformat()}


def _check_created_token(c: Case) -> None:
    token = c.returned
    assert token is not None and token.job_id == c.job.id
    new = [t for t in c.after.tokens if t not in c.before.tokens]
    assert len(new) == 1 and new[0]["id"] == token.id, new
    t = new[0]
    assert (t["status"], t["tags"], t["output"], t["completed_at"]) == (
        "waiting", ["t"], None, None), t
    assert Moment(60).matches(t["timeout_at"], "timeout_at", c), (
        f"timeout_at {t['timeout_at']} not in [{c.t0} + 60s, {c.t1} + 60s]")


def _check_timed_out_token(c: Case) -> None:
    (t,) = [t for t in c.after.tokens if t["id"] == c.extra["token"]]
    assert t["status"] == "timed_out", t
    assert NOW.matches(t["completed_at"], "completed_at", c), t


RECLAIM_TIMEOUT = ("worker {lease_owner} stopped heart-beating for 60s "
                   "while running attempt {attempts}")
RECLAIM_OWNER = "worker {lease_owner} restarted while running attempt {attempts}"
RECLAIMED = {"status": "pending", "run_at": NOW, **LEASE_CLEARED}
RECLAIMED_EVENT = ("reclaimed", From(lambda c: {"worker": c.old["lease_owner"],
                                                 "attempt": c.old["attempts"],
                                                 "status": "pending"}))

VERBS: dict[str, Verb] = {
    "claim": Verb(
        run=lambda s, j, x: s.claim(CLAIMER, ["default"], 10),
        took=lambda r, j: j.id in [c.id for c in r],
        changes={"status": "processing", "attempts": From(lambda c: c.old["attempts"] + 1),
                 "lease_owner": CLAIMER, "lease_token": NEW_LEASE, "started_at": NOW},
        events=[("processing", From(lambda c: {"attempt": c.old["attempts"] + 1,
                                               "worker": CLAIMER}))]),
    "finish:completed": Verb(
        run=_finish("completed"), took=_accepted,
        changes={"status": "completed", "result": RESULT, "completed_at": NOW, **LEASE_CLEARED},
        events=[("completed", From(lambda c: {"attempt": c.old["attempts"]}))]),
    "finish:retry": Verb(
        run=_finish("retry"), took=_accepted,
        changes={"status": "pending", "run_at": Moment(RETRY_DELAY), "last_error": ERROR,
                 "error_history": From(lambda c: history(c.old["attempts"]), "the history"),
                 "error_group": From(lambda c: error_group(ERROR, history(c.old["attempts"])),
                                     "its fingerprint"),
                 **LEASE_CLEARED},
        events=[("retried", From(lambda c: {"attempt": c.old["attempts"], "error": ERROR,
                                            "delay": RETRY_DELAY}))]),
    "finish:failed": Verb(
        run=_finish("failed"), took=_accepted,
        changes={"status": "failed", "completed_at": NOW, "last_error": ERROR,
                 "error_history": From(lambda c: history(c.old["attempts"]), "the history"),
                 "error_group": From(lambda c: error_group(ERROR, history(c.old["attempts"])),
                                     "its fingerprint"),
                 **LEASE_CLEARED},
        events=[("failed", From(lambda c: {"attempt": c.old["attempts"], "error": ERROR,
                                           "permanent": False}))]),
    "finish:wait_time": Verb(
        run=_finish("waiting"), took=_accepted, prepare=_prepare_until,
        changes={"status": "waiting", "attempts": From(lambda c: c.old["attempts"] - 1),
                 "run_at": From(lambda c: c.extra["until"], "until"), "wait_token": "",
                 "steps": STEPS, **LEASE_CLEARED},
        events=[("waiting", From(_waiting_event))]),
    "finish:wait_token": Verb(
        run=_finish("waiting"), took=_accepted, prepare=_prepare_wait_token,
        changes={"status": "waiting", "attempts": From(lambda c: c.old["attempts"] - 1),
                 "run_at": From(lambda c: c.extra["until"], "until"),
                 "wait_token": From(lambda c: c.extra["token"], "the token"),
                 "steps": STEPS, **LEASE_CLEARED},
        events=[("waiting", From(_waiting_event))]),
    "finish:released": Verb(
        run=_finish("released"), took=_accepted,
        changes={"status": "pending", "attempts": From(lambda c: c.old["attempts"] - 1),
                 "run_at": NOW, **LEASE_CLEARED},
        events=[("released", From(lambda c: {"attempt": c.old["attempts"],
                                             "reason": "shutdown"}))]),
    "finish:released_later": Verb(
        run=_finish("released_later"), took=_accepted,
        changes={"status": "pending", "attempts": From(lambda c: c.old["attempts"] - 1),
                 "run_at": Moment(RETRY_DELAY), "last_error": NO_HANDLER, "error_group": None,
                 **LEASE_CLEARED},
        events=[("released", From(lambda c: {"attempt": c.old["attempts"],
                                             "reason": "unknown_type", "worker": OWNER,
                                             "delay": RETRY_DELAY}))]),
    "set_progress": Verb(
        run=lambda s, j, x: s.set_progress(j.id, j.lease_token or STALE, 40),
        took=lambda r, j: r, changes={"progress": 40}),
    "save_steps": Verb(
        run=lambda s, j, x: s.save_steps(j.id, j.lease_token or STALE, {"a": [1, 2]}),
        took=lambda r, j: r, changes={"steps": {"a": [1, 2]}}),
    "create_token": Verb(
        run=lambda s, j, x: s.create_token(j.id, j.lease_token or STALE, "k", 60, ["t"]),
        took=lambda r, j: r is not None,
        changes={"steps": From(lambda c: {**c.old["steps"], "k": c.returned.id},
                               "steps + k: the token")},
        check=_check_created_token),
    "held_leases": Verb(
        run=lambda s, j, x: s.held_leases({j.id: j.lease_token or STALE}),
        took=_accepted, writes=False),
    "resume_due": Verb(
        run=lambda s, j, x: s.resume_due(), took=lambda r, j: r == 1,
        changes={"status": "pending"}, events=[("resumed", {"reason": "time"})]),
    "resume_for_token": Verb(
        run=lambda s, j, x: s.resume_for_token(j.id, x["token"], "completed"),
        took=lambda r, j: r, prepare=_prepare_token,
        changes={"status": "pending", "run_at": NOW, "wait_token": ""},
        events=[("resumed", From(lambda c: {"token": c.extra["token"], "reason": "completed"}))]),
    "expire_tokens": Verb(
        run=lambda s, j, x: s.expire_tokens(), took=lambda r, j: None,
        prepare=_prepare_timed_out_token, touches_tokens=True, check=_check_timed_out_token,
        changes={"status": "pending", "run_at": NOW, "wait_token": ""},
        events=[("resumed", From(lambda c: {"token": c.extra["token"], "reason": "timed_out"}))]),
    "expire_jobs": Verb(
        run=lambda s, j, x: s.expire_jobs(), took=_accepted,
        changes={"status": "cancelled", "completed_at": NOW},
        events=[("cancelled", {"reason": "expired"})]),
    "reclaim:timeout": Verb(
        run=lambda s, j, x: s.reclaim(60), took=lambda r, j: (j.id, "pending") in r,
        prepare=_prepare_dead_worker,
        changes={**RECLAIMED, "last_error": From(lambda c: RECLAIM_TIMEOUT.format(**c.old)),
                 "error_history": Appended(RECLAIM_TIMEOUT),
                 "error_group": From(lambda c: error_group(RECLAIM_TIMEOUT.format(**c.old),
                                                           None), "its fingerprint")},
        events=[RECLAIMED_EVENT]),
    "reclaim:owner": Verb(
        run=lambda s, j, x: s.reclaim(60, owner=OWNER), took=lambda r, j: (j.id, "pending") in r,
        changes={**RECLAIMED, "last_error": From(lambda c: RECLAIM_OWNER.format(**c.old)),
                 "error_history": Appended(RECLAIM_OWNER),
                 "error_group": From(lambda c: error_group(RECLAIM_OWNER.format(**c.old),
                                                           None), "its fingerprint")},
        events=[RECLAIMED_EVENT]),
    "prune_jobs": Verb(
        run=lambda s, j, x: s.prune_jobs(days=1), took=lambda r, j: r == 1, deletes=True),
}

FINISHED = {"completed", "failed", "cancelled"}

#: verb -> the states it acts on. From every other state it is refused and writes nothing.
ALLOWED: dict[str, set[str]] = {
    "claim":                 {"pending_due"},
    "finish:completed":      {"processing"},
    "finish:retry":          {"processing"},
    "finish:failed":         {"processing"},
    "finish:wait_time":      {"processing"},
    "finish:wait_token":     {"processing"},
    "finish:released":       {"processing"},
    "finish:released_later": {"processing"},
    "set_progress":          {"processing"},
    "save_steps":            {"processing"},
    "create_token":          {"processing"},
    "held_leases":           {"processing"},
    "resume_due":            {"waiting_due"},
    "resume_for_token":      {"waiting_token"},
    "expire_tokens":         {"waiting_token"},
    "expire_jobs":           {"pending_expired"},
    "reclaim:timeout":       {"processing"},
    "reclaim:owner":         {"processing"},
    "prune_jobs":            FINISHED,
}
assert ALLOWED.keys() == VERBS.keys()

# -- checking a case ------------------------------------------------------------------------


def apply(store: Store, verb: str, job: Job, state: str = "") -> Case:
    spec = VERBS[verb]
    extra = spec.prepare(store, job) if spec.prepare else {}
    before = snapshot(job.id, store.alias)
    t0 = db_clock(store.alias)
    returned = spec.run(store, job, extra)
    t1 = db_clock(store.alias)
    return Case(store=store, job=job, state=state, extra=extra, before=before,
                after=snapshot(job.id, store.alias), returned=returned, t0=t0, t1=t1)


def check_allowed(verb: str, case: Case) -> None:
    spec = VERBS[verb]
    assert spec.took(case.returned, case.job) in (True, None), (
        f"{verb} did not report the job acted on: {case.returned!r}")
    if spec.deletes:
        assert case.after.row is None, "the row should be deleted"
        assert case.after.events == case.before.events, "events outlive their job"
        return
    assert case.after.row is not None
    wrong = []
    for name in JOB_FIELDS:
        want = spec.changes.get(name, NOW if name == "updated_at" and spec.writes
                                else case.old[name])
        got = case.after.row[name]
        ok = want.matches(got, name, case) if isinstance(want, Matcher) else got == want
        if not ok:
            shown = want if isinstance(want, Matcher) else repr(want)
            wrong.append(f"{name}: got {got!r}, want {shown} (was {case.old[name]!r})")
    assert not wrong, f"{verb} from {case.state}:\n  " + "\n  ".join(wrong)
    if "result" in spec.changes:
        assert case.after.result_is_sql_null is (spec.changes["result"] is None)
    else:
        assert case.after.result_is_sql_null is case.before.result_is_sql_null
    assert case.after.events[:len(case.before.events)] == case.before.events
    new = case.after.event_pairs[len(case.before.events):]
    want_events = [(kind, expected_value(data, "", case)) for kind, data in spec.events]
    assert new == want_events, f"{verb} from {case.state}: events {new} != {want_events}"
    if not spec.touches_tokens and spec.check is None:
        assert case.after.tokens == case.before.tokens
    if spec.check:
        spec.check(case)


def check_refused(verb: str, case: Case) -> None:
    spec = VERBS[verb]
    assert spec.took(case.returned, case.job) in (False, None), (
        f"{verb} from {case.state} reported the job acted on: {case.returned!r}")
    before, after = case.before, case.after
    if spec.touches_tokens:  # the tokens' own change is checked by the verb's check
        before, after = (Snapshot(s.row, s.result_is_sql_null, s.events, []) for s in
                         (before, after))
        assert spec.check is not None
        spec.check(case)
    assert after == before, f"{verb} from {case.state} changed something"


# -- comparing runs -------------------------------------------------------------------------

#: Columns whose value is a moment or an identity: compared as present/absent only.
VOLATILE = {"id", "created_at", "updated_at", "started_at", "completed_at", "run_at",
            "lease_token", "wait_token"}


def normalized(snap: Snapshot, *, ids: dict[str, str] | None = None) -> dict[str, Any]:
    """A snapshot without ids and moments: moments and leases as present/absent, token ids
    (in ``wait_token``, ``steps``, event data) by ``ids`` (token id -> a stable name), the
    ``at`` of error-history entries dropped."""
    ids = ids or {}

    def clean(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items() if k != "at"}
        if isinstance(value, list):
            return [clean(v) for v in value]
        if isinstance(value, str) and value in ids:
            return ids[value]
        if type(value) in (bool, int, float):  # 0 == False == 0.0: keep the JSON type
            return (type(value).__name__, value)
        return value

    row = None
    if snap.row is not None:
        row = {k: (v is not None and v != "") if k in VOLATILE else clean(v)
               for k, v in snap.row.items()}
        row["wait_token"] = clean(snap.row["wait_token"])
    return {"row": row, "result_is_sql_null": snap.result_is_sql_null,
            "events": [(kind, clean(data)) for kind, data in snap.event_pairs],
            "tokens": [clean({k: (v is not None) if k.endswith("_at") else v
                              for k, v in t.items() if k not in ("id", "job_id")})
                       for t in snap.tokens]}


# -- the contract ---------------------------------------------------------------------------

#: The writes an attempt makes under its lease.
LEASED_WRITES = ["finish:completed", "finish:retry", "finish:failed", "finish:wait_time",
                 "finish:wait_token", "finish:released", "finish:released_later",
                 "set_progress", "save_steps", "create_token"]

#: How a lease is lost (see ``lost_lease``).
LOST = ["stale", "wrong", "finished", "reclaimed"]

#: Results of every JSON kind, falsy ones included: a bulk path must store them as the row
#: path does (``None`` is SQL NULL, the others JSON).
RESULTS: list[Any] = [RESULT, None, "text", [1, 2], 3.5, 0, False, "", {}, [], {"é": "✓"}]

#: A mixed batch: (kind, the lease's standing). ``held``: the row's own lease; ``stale``: the
#: row is leased again under another; ``finished``: the row completed already; ``wrong``: a
#: lease the row never had.
MIXED = [("completed", "held"), ("completed-null", "held"), ("completed-prolonged", "held"),
         ("retry", "held"), ("failed", "held"), ("wait_time", "held"), ("wait_token", "held"),
         ("released", "held"), ("released_later", "held"), ("completed", "stale"),
         ("retry", "stale"), ("released_later", "stale"),
         ("completed", "finished"), ("failed", "wrong"), ("completed", "held")]


def new_job(**fields: Any) -> Job:
    """An unsaved job for ``store.insert``."""
    fields.setdefault("type", TYPE)
    fields.setdefault("queue", "default")
    fields.setdefault("payload", {"n": 1})
    return Job(**fields)


def lost_lease(store: Store, how: str) -> tuple[Job, uuid.UUID]:
    """A job written and claimed with the store's own verbs, and a lease that no longer holds
    it: ``stale`` (released, then claimed again under a new lease), ``wrong`` (a lease it
    never had), ``finished`` (completed under that lease), ``reclaimed`` (taken back)."""
    store.insert([new_job()])
    (first,) = store.claim("w-a", ["default"], 1)
    assert first.lease_token is not None
    if how == "stale":
        assert store.finish([outcome("released", first)]) == {first.id}
        (second,) = store.claim("w-b", ["default"], 1)
        assert second.id == first.id and second.lease_token != first.lease_token
        return second, first.lease_token
    if how == "wrong":
        return first, uuid.uuid4()
    if how == "finished":
        assert store.finish([outcome("completed", first)]) == {first.id}
        return first, first.lease_token
    if how == "reclaimed":
        assert store.reclaim(60, owner="w-a") == [(first.id, "pending")]
        return first, first.lease_token
    raise ValueError(how)


def leased_write(store: Store, verb: str, job: Job, lease: uuid.UUID,
                 extra: dict[str, Any]) -> bool:
    """Apply one of LEASED_WRITES under ``lease``; whether the store accepted it."""
    if verb.startswith("finish:"):
        kind = {"wait_time": "waiting", "wait_token": "waiting"}.get(verb[7:], verb[7:])
        # released_later: outcome() builds it as a released Finish with a delay
        return job.id in store.finish([outcome(kind, job, lease, until=extra.get("until"),
                                               wait_token=extra.get("token", ""))])
    if verb == "set_progress":
        return store.set_progress(job.id, lease, 40)
    if verb == "save_steps":
        return store.save_steps(job.id, lease, {"a": 1})
    if verb == "create_token":
        return store.create_token(job.id, lease, "k", 60, []) is not None
    raise ValueError(verb)


def mixed_batch(store: Store, at: datetime) -> tuple[list[Finish], dict[str, str]]:
    """The MIXED outcomes over fresh rows (payload ``{"i"}``; waits until ``at`` + i s),
    and a name for each token made (to compare two batches' token ids)."""
    outcomes, names = [], {}
    for i, (kind, lease) in enumerate(MIXED):
        state = "completed" if lease == "finished" else "processing"
        job = build_job(state, alias=store.alias, payload={"i": i})
        given = {"held": None, "stale": uuid.uuid4(), "finished": STALE,
                 "wrong": uuid.uuid4()}[lease]
        until = at + timedelta(seconds=i)
        if kind == "completed-null":
            o = outcome("completed", job, given, result=None)
        elif kind == "completed-prolonged":
            o = outcome("completed", job, given,
                        events=[("prolonged", {"attempt": job.attempts, "seconds": 5})])
        elif kind == "wait_time":
            o = outcome("waiting", job, given, until=until)
        elif kind == "wait_token":
            token = make_token(job, timeout_at=until, alias=store.alias)
            names[token.id] = f"token-{i}"
            o = outcome("waiting", job, given, until=until, wait_token=token.id)
        else:
            o = outcome(kind, job, given)
        outcomes.append(o)
    return outcomes, names


def _spy(store: Store, monkeypatch: Any, name: str) -> list[int]:
    """Record the batch sizes ``store.<name>`` is called with."""
    sizes: list[int] = []
    real = getattr(store, name)

    def spy(outcomes: Any) -> Any:
        sizes.append(len(outcomes))
        return real(outcomes)

    monkeypatch.setattr(store, name, spy)
    return sizes


def _normalized_all(store: Store, outcomes: list[Finish],
                    names: dict[str, str]) -> list[dict[str, Any]]:
    return [normalized(snapshot(o.job_id, store.alias), ids=names) for o in outcomes]


class StoreContract:
    """The contract of a job store. The ``store`` fixture yields each store to check;
    ``other_store`` is another store over the same database (the portable one for a vendor
    store, the vendor one for the portable store)."""

    # 1. every verb from every state ----------------------------------------------------

    @pytest.mark.parametrize(("verb", "state"), [(v, s) for v in VERBS for s in STATES],
                             ids=[f"{v}-from-{s}" for v in VERBS for s in STATES])
    def test_transition(self, store: Store, verb: str, state: str,
                        request: pytest.FixtureRequest) -> None:
        """Allowed: exactly the effect in the table (columns and events); refused: the
        row, its events and its tokens are as they were."""
        allowed = state in ALLOWED[verb]
        case = apply(store, verb, build_job(state), state)
        if allowed:
            check_allowed(verb, case)
        else:
            check_refused(verb, case)

    # 2. fencing ------------------------------------------------------------------------

    @pytest.mark.parametrize("how", LOST)
    @pytest.mark.parametrize("verb", LEASED_WRITES)
    def test_a_write_under_a_lost_lease_writes_nothing(self, store: Store, verb: str,
                                                       how: str) -> None:
        job, lease = lost_lease(store, how)
        extra: dict[str, Any] = {"until": timezone.now() + HOUR}
        if verb == "finish:wait_token":
            extra["token"] = make_token(job, timeout_at=extra["until"]).id
        before = snapshot(job.id)
        assert leased_write(store, verb, job, lease, extra) is False
        assert snapshot(job.id) == before
        assert store.held_leases({job.id: lease}) == set()

    def test_held_leases_names_only_the_leases_still_held(self, store: Store) -> None:
        held = build_job("processing")
        released, _ = lost_lease(store, "reclaimed")
        done = build_job("completed")
        assert store.held_leases({}) == set()
        assert store.held_leases({
            held.id: held.lease_token, released.id: released.lease_token or STALE,
            done.id: STALE, uuid.uuid4(): uuid.uuid4(),
        }) == {held.id}
        assert store.held_leases({held.id: uuid.uuid4()}) == set()

    # 3. bulk = single -------------------------------------------------------------------

    def test_completing_many_at_once_is_completing_each_alone(self, store: Store,
                                                              monkeypatch: Any) -> None:
        """Plain completions take the vendor's bulk path (``_complete_many``: one statement
        for all); alone, or through the portable store's row path, they store the same."""
        sizes = _spy(store, monkeypatch, "_complete_many") if store.bulk_complete else []

        def group() -> list[Finish]:
            return [outcome("completed", build_job("processing", payload={"i": i}), result=r)
                    for i, r in enumerate(RESULTS)]

        together, alone, portable = group(), group(), group()
        assert store.finish(together) == {o.job_id for o in together}
        if store.bulk_complete:
            assert sizes == [len(RESULTS)]
        for o in alone:
            assert store.finish([o]) == {o.job_id}
        for o in portable:
            assert Store(store.alias).finish([o]) == {o.job_id}
        a, b, c = (_normalized_all(store, g, {}) for g in (together, alone, portable))
        assert a == b
        assert a == c
        for o in together:
            snap = snapshot(o.job_id)
            assert snap.row is not None and snap.row["status"] == "completed"
            assert snap.result_is_sql_null is (o.result is None)
            assert snap.event_pairs == [("completed", {"attempt": o.attempt})]
        results = dict(Job.objects.filter(id__in=[o.job_id for o in together])
                       .values_list("id", "result"))
        typed = [(type(r).__name__, r) for r in RESULTS]
        assert [(type(results[o.job_id]).__name__, results[o.job_id]) for o in together] == typed

    def test_a_mixed_batch_is_each_outcome_alone(self, store: Store, monkeypatch: Any) -> None:
        """completed + retry + failed + waiting + released, some leases stale or wrong, in one
        ``finish``: the same rows, events and accepted ids as one call per outcome."""
        sizes = _spy(store, monkeypatch, "_complete_many") if store.bulk_complete else []
        until = timezone.now() + HOUR
        together, names_a = mixed_batch(store, until)
        alone, names_b = mixed_batch(store, until)
        accepted = store.finish(together)
        if store.bulk_complete:  # the plain completions went in bulk (stale ones included)
            assert sizes == [5]
        accepted_alone = set().union(*(store.finish([o]) for o in alone))
        held = [lease == "held" for _, lease in MIXED]
        assert [o.job_id in accepted for o in together] == held
        assert [o.job_id in accepted_alone for o in alone] == held
        assert (_normalized_all(store, together, names_a)
                == _normalized_all(store, alone, names_b))

    def test_the_completed_event_is_the_outcomes_event_data(
            self, store: Store, request: pytest.FixtureRequest) -> None:
        """A Finish that gives its event data (and leaves ``attempt`` at its default): the
        row path writes ``event_data``; a bulk path must write the same."""
        job = build_job("processing")
        o = Finish(job.id, job.lease_token, "completed", result=1,  # type: ignore[arg-type]
                   event_data={"attempt": job.attempts})
        assert store.finish([o]) == {job.id}
        assert snapshot(job.id).event_pairs == [("completed", {"attempt": job.attempts})]

    def test_the_same_completion_twice_in_one_batch_counts_once(self, store: Store) -> None:
        job = build_job("processing")
        o = outcome("completed", job)
        assert store.finish([o, o, outcome("completed", job)]) == {job.id}
        assert snapshot(job.id).event_pairs == [("completed", {"attempt": job.attempts})]

    def test_finish_nothing(self, store: Store) -> None:
        assert store.finish([]) == set()

    # 4. moments ------------------------------------------------------------------------

    def test_created_started_completed_are_ordered_at_full_precision(self,
                                                                      store: Store) -> None:
        jobs = store.insert([new_job(payload={"n": n}) for n in range(60)])
        done = 0
        while batch := store.claim("w-clock", ["default"], 7):
            assert store.finish([outcome("completed", j) for j in batch]) == {
                j.id for j in batch}
            done += len(batch)
        assert done == len(jobs)
        rows = list(Job.objects.filter(id__in=[j.id for j in jobs]))
        for job in rows:
            assert job.status == "completed"
            assert job.created_at <= job.started_at <= job.completed_at, job.id
            events = list(JobEvent.objects.filter(job_id=job.id).order_by("id"))
            assert [e.type for e in events] == ["added", "processing", "completed"]
            stamps = [e.created_at for e in events]
            assert stamps == sorted(stamps), job.id
        moments = [t for job in rows for t in (job.started_at, job.completed_at)]
        assert any(t.microsecond % 1000 for t in moments), "microseconds were truncated"

    def test_an_outcome_stamps_the_handlers_begin_and_end_never_before_the_claim(
            self, store: Store) -> None:
        """A job that sat 10 s in the worker's buffer: its run time is the handler's (2 s to
        1 s ago), not claim to write. Moments before the claim are clamped to it; an outcome
        with no moments keeps the claim's and the write's. Bulk and row paths alike."""
        store.insert([new_job(payload={"n": n}) for n in range(6)])
        claimed = store.claim("w-ran", ["default"], 6)
        assert len(claimed) == 6
        Job.objects.filter(id__in=[j.id for j in claimed]).update(
            started_at=F("started_at") - timedelta(seconds=10),
            created_at=F("created_at") - timedelta(seconds=12))
        claims = dict(Job.objects.filter(id__in=[j.id for j in claimed])
                      .values_list("id", "started_at"))
        ran_done, ran_failed, ran_retry, early, plain, ran_events = claimed
        mono = time.monotonic()
        outcomes = [outcome("completed", ran_done), outcome("failed", ran_failed),
                    outcome("retry", ran_retry), outcome("completed", early),
                    outcome("completed", plain),
                    outcome("completed", ran_events, events=[("prolonged", {"by": 1})])]
        for o in outcomes:
            o.ran = (mono - 2.0, mono - 1.0)
        outcomes[3].ran = (mono - 100.0, mono - 99.0)  # before the claim
        outcomes[4].ran = None
        t0 = db_clock()
        assert store.finish(outcomes) == {j.id for j in claimed}
        t1 = db_clock()
        rows = {j.id: j for j in Job.objects.filter(id__in=[j.id for j in claimed])}
        slack = timedelta(milliseconds=50)
        s2, s1 = timedelta(seconds=2), timedelta(seconds=1)
        for job in (ran_done, ran_failed, ran_events):
            row = rows[job.id]
            assert t0 - s2 - slack <= row.started_at <= t1 - s2 + slack, (job.id, t0, row)
            assert t0 - s1 - slack <= row.completed_at <= t1 - s1 + slack, (job.id, t1, row)
            assert abs(row.duration.total_seconds() - 1.0) < 0.05, row.duration
        row = rows[ran_retry.id]
        assert row.status == "pending" and row.completed_at is None
        assert t0 - s2 - slack <= row.started_at <= t1 - s2 + slack
        row = rows[early.id]
        assert row.started_at == claims[early.id] == row.completed_at
        row = rows[plain.id]
        assert row.started_at == claims[plain.id] and t0 <= row.completed_at <= t1
        for row in rows.values():
            assert row.created_at <= row.started_at
            assert row.completed_at is None or row.started_at <= row.completed_at

    @pytest.mark.parametrize("delay", [0.0, 0.25, 30.0])
    def test_a_retry_is_due_no_earlier_than_its_finish_plus_delay(self, store: Store,
                                                                  delay: float) -> None:
        store.insert([new_job() for _ in range(10)])
        claimed = store.claim("w", ["default"], 10)
        assert len(claimed) == 10
        outcomes = []
        for j in claimed:
            o = outcome("retry", j)
            o.delay = delay
            outcomes.append(o)
        t0 = db_clock()
        assert store.finish(outcomes) == {j.id for j in claimed}
        t1 = db_clock()
        span = timedelta(seconds=delay)
        for job in Job.objects.filter(id__in=[j.id for j in claimed]):
            assert job.status == "pending"
            assert job.started_at <= t0
            assert t0 + span <= job.run_at <= t1 + span, (t0, job.run_at, t1)
            assert job.updated_at + span <= job.run_at
        moments = [j.run_at for j in Job.objects.filter(id__in=[j.id for j in claimed])]
        assert any(t.microsecond % 1000 for t in moments), "microseconds were truncated"

    # 5. claim --------------------------------------------------------------------------

    @pytest.mark.parametrize("queues", [["default"], ["a", "b"]])
    def test_claim_takes_the_best_priority_then_the_oldest(self, store: Store,
                                                           queues: list[str]) -> None:
        """Across the queues too: the best of all, not the best of each queue in turn."""
        now = timezone.now()
        specs = [(p, s) for p in (0, 5, -3, 10) for s in (30, 10, 50, 70)]
        for n, (p, s) in enumerate(specs):
            build_job("pending_due", priority=p, run_at=now - timedelta(seconds=s),
                      payload={"p": p, "s": s}, queue=queues[n % len(queues)])
        order = []
        while batch := store.claim("w", queues, 5):
            assert len(batch) <= 5
            keys = [(-j.priority, j.run_at) for j in batch]
            assert keys == sorted(keys), "a batch comes in claim order"
            order += [(j.payload["p"], j.payload["s"]) for j in batch]
        assert order == sorted(specs, key=lambda ps: (-ps[0], -ps[1]))

    def test_claim_takes_only_the_given_queues(self, store: Store) -> None:
        for q in ("a", "b", "c"):
            for i in range(3):
                build_job("pending_due", queue=q, payload={"q": q, "i": i})
        taken = store.claim("w", ["c", "a", "c"], 100)
        assert sorted((j.queue, j.payload["i"]) for j in taken) == [
            (q, i) for q in ("a", "c") for i in range(3)]
        assert len({j.id for j in taken}) == 6
        assert store.claim("w", ["nowhere"], 100) == []
        assert [j.queue for j in store.claim("w", ["b"], 100)] == ["b"] * 3

    def test_claim_takes_nothing_of_a_paused_queue(self, store: Store) -> None:
        """Paused: its due jobs stay pending, untouched, while other queues are claimed; a
        queue resumed (its row kept, ``paused`` false) is claimed again."""
        for q in ("a", "b"):
            for i in range(3):
                build_job("pending_due", queue=q, payload={"q": q, "i": i})
        Queue.objects.create(name="a", paused=True, paused_at=timezone.now())
        held = list(Job.objects.filter(queue="a"))
        before = [snapshot(j.id) for j in held]
        assert store.claim("w", ["a"], 100) == []
        assert {j.queue for j in store.claim("w", ["a", "b"], 100)} == {"b"}
        assert [snapshot(j.id) for j in held] == before
        Queue.objects.filter(name="a").update(paused=False)
        assert sorted(j.payload["i"] for j in store.claim("w", ["a", "b"], 100)) == [0, 1, 2]

    def test_claim_takes_only_the_given_job_types(self, store: Store) -> None:
        """``runworker --type`` / ``--exclude-type``: over several queues, in claim order."""
        for q in ("a", "b"):
            for t in ("t.x", "t.y", "t.z"):
                build_job("pending_due", queue=q, type=t, payload={"q": q, "t": t})

        def taken(types: JobTypes) -> list[tuple[str, str]]:
            return sorted((j.queue, j.type) for j in store.claim("w", ["a", "b"], 100, types))

        assert taken(JobTypes(only=("t.x", "t.nowhere"))) == [("a", "t.x"), ("b", "t.x")]
        assert taken(JobTypes(exclude=("t.z",))) == [("a", "t.y"), ("b", "t.y")]
        assert taken(JobTypes(only=("t.z",), exclude=("t.y",))) == [("a", "t.z"), ("b", "t.z")]
        assert taken(JobTypes()) == []  # everything is taken by now
        assert Job.objects.filter(status="pending").count() == 0

    def test_a_claims_processing_events_carry_the_claims_own_moment(self,
                                                                     store: Store) -> None:
        """The record of when each attempt was claimed (what a rate limit counts), kept after
        the outcome moves ``started_at`` to the handler's begin: plain and limited claims."""
        build_job("pending_due")
        build_job("pending_due", concurrency_key="k", concurrency_limit=5)
        build_job("pending_due", rate_key="r", rate_limit=5, rate_period=60.0)
        claimed = store.claim("w", ["default"], 100) + store.claim_limited("w", ["default"], 100)
        assert len(claimed) == 3
        for job in Job.objects.filter(id__in=[j.id for j in claimed]):
            (event,) = JobEvent.objects.filter(job_id=job.id, type="processing")
            assert event.created_at == job.started_at, (job.id, event.created_at)

    def test_limited_jobs_are_only_the_limited_claims(self, store: Store) -> None:
        plain = build_job("pending_due")
        build_job("pending_due", concurrency_key="k", concurrency_limit=5)
        build_job("pending_due", rate_key="r", rate_limit=5, rate_period=60.0)
        assert [j.id for j in store.claim("w", ["default"], 100)] == [plain.id]
        assert len(store.claim_limited("w", ["default"], 100)) == 2
        assert store.claim_limited("w", ["default"], 100) == []

    def test_claim_limited_runs_at_most_the_limit_per_key(self, store: Store) -> None:
        now = timezone.now()
        k = [build_job("pending_due", concurrency_key="k", concurrency_limit=2,
                       run_at=now - timedelta(seconds=60 - i), payload={"k": i})
             for i in range(5)]
        j = [build_job("pending_due", concurrency_key="j", concurrency_limit=1,
                       priority=1, payload={"j": i}) for i in range(3)]
        first = store.claim_limited("w", ["default"], 100)
        # Best first: j's priority, then k's oldest two.
        assert [x.id for x in first] == [j[0].id, k[0].id, k[1].id]
        assert store.claim_limited("w", ["default"], 100) == []
        # A slot frees when its job leaves processing: finished, or given back.
        store.finish([outcome("completed", first[-1])])
        Job.objects.filter(id=first[0].id).update(status="pending", lease_token=None,
                                                   lease_owner="")
        again = store.claim_limited("w", ["default"], 100)
        assert sorted(x.concurrency_key for x in again) == sorted(
            [first[-1].concurrency_key, first[0].concurrency_key])
        running = Job.objects.filter(status="processing")
        assert running.filter(concurrency_key="k").count() == 2
        assert running.filter(concurrency_key="j").count() == 1

    def test_claim_limited_starts_at_most_the_rate_per_window(self, store: Store) -> None:
        for i in range(5):
            build_job("pending_due", rate_key="r", rate_limit=2, rate_period=3600.0,
                      payload={"i": i})
        assert len(store.claim_limited("w", ["default"], 100)) == 2
        assert store.claim_limited("w", ["default"], 100) == []
        assert RateStart.objects.filter(key="r").count() == 2
        # Finishing does not give a start back: only the window's passing does.
        for job in Job.objects.filter(status="processing"):
            store.finish([outcome("completed", job)])
        assert store.claim_limited("w", ["default"], 100) == []
        RateStart.objects.update(started_at=timezone.now() - timedelta(hours=2))
        assert len(store.claim_limited("w", ["default"], 100)) == 2
        assert RateStart.objects.filter(key="r").count() == 2  # the old ones pruned

    def test_claim_limited_keeps_pauses_and_job_types(self, store: Store) -> None:
        build_job("pending_due", queue="a", concurrency_key="k", concurrency_limit=9)
        build_job("pending_due", queue="b", concurrency_key="k", concurrency_limit=9,
                  type="t.other")
        Queue.objects.create(name="a", paused=True)
        assert store.claim_limited("w", ["a", "b"], 100, JobTypes(only=(TYPE,))) == []
        assert [j.queue for j in store.claim_limited("w", ["a", "b"], 100)] == ["b"]

    def test_claim_takes_at_most_limit(self, store: Store) -> None:
        for _ in range(5):
            build_job("pending_due")
        assert store.claim("w", ["default"], 0) == []
        assert store.claim("w", ["default"], -1) == []
        assert len(store.claim("w", ["default"], 2)) == 2
        assert len(store.claim("w", ["default"], 1)) == 1
        assert len(store.claim("w", ["default"], 10)) == 2
        assert store.claim("w", ["default"], 10) == []

    def test_claim_skips_what_is_not_due(self, store: Store) -> None:
        due = build_job("pending_due")
        build_job("pending_due", expires_at=timezone.now() - timedelta(microseconds=1))
        build_job("pending_due", run_at=timezone.now() + timedelta(minutes=1))
        for state in STATES:
            if state != "pending_due":
                build_job(state)
        # Expiring later, or due this very microsecond: still claimable.
        later = build_job("pending_due", expires_at=timezone.now() + HOUR)
        just = build_job("pending_due", run_at=timezone.now())
        assert {j.id for j in store.claim("w", ["default"], 100)} == {due.id, later.id, just.id}

    def test_claim_counts_the_attempt_and_records_it(self, store: Store) -> None:
        job = build_job("pending_due", attempts=1, last_error="x", progress=5)
        t0 = db_clock()
        (claimed,) = store.claim("worker-9", ["default"], 1)
        t1 = db_clock()
        row = Job.objects.get(id=job.id)
        assert (row.status, row.attempts, row.lease_owner) == ("processing", 2, "worker-9")
        assert row.lease_token is not None and t0 <= row.started_at <= t1
        assert snapshot(job.id).event_pairs == [
            ("processing", {"attempt": 2, "worker": "worker-9"})]
        # What the claim returns is the stored row, every column.
        assert {f: getattr(claimed, f) for f in JOB_FIELDS} == {
            f: getattr(row, f) for f in JOB_FIELDS}

    def test_two_stores_on_one_table_never_claim_a_job_twice(self, store: Store,
                                                             other_store: Store) -> None:
        ids = {j.id for j in store.insert([new_job(payload={"n": n}) for n in range(25)])}
        seen: list[uuid.UUID] = []
        turn = 0
        while batch := (store, other_store)[turn % 2].claim(f"w{turn % 2}", ["default"], 3):
            seen += [j.id for j in batch]
            turn += 1
        assert len(seen) == len(set(seen)) == 25 and set(seen) == ids
        assert not (store.claim("w0", ["default"], 3) or other_store.claim("w1", ["default"], 3))
        assert set(Job.objects.filter(id__in=ids).values_list("attempts", flat=True)) == {1}
        assert JobEvent.objects.filter(job_id__in=ids, type="processing").count() == 25

    def test_claim_with_no_queues_takes_nothing(self, store: Store,
                                                request: pytest.FixtureRequest) -> None:
        """An empty queue list names no queue. (Workers always pass one or more; the stores
        must still agree on the edge.)"""
        job = build_job("pending_due")
        before = snapshot(job.id)
        assert store.claim("w", [], 5) == []
        assert snapshot(job.id) == before

    # insert ----------------------------------------------------------------------------

    def test_insert_writes_the_rows_and_their_added_events_in_order(self,
                                                                    store: Store) -> None:
        jobs = [new_job(payload={"n": n}, queue=q, priority=n, tags=["x"])
                for n, q in enumerate(["a", "b", "a"])]
        out = store.insert(jobs)
        assert out == jobs and [j.payload["n"] for j in out] == [0, 1, 2]
        for job in out:
            row = Job.objects.get(id=job.id)
            assert {f: getattr(row, f) for f in JOB_FIELDS} == {
                f: getattr(job, f) for f in JOB_FIELDS}
            assert snapshot(job.id).event_pairs == [("added", {})]
        assert store.insert([]) == []

    def test_insert_keeps_one_job_per_idempotency_key(self, store: Store) -> None:
        (kept,) = store.insert([new_job(idempotency_key="k1", payload={"v": "first"})])
        batch = [new_job(idempotency_key="k2", payload={"v": "a"}),
                 new_job(idempotency_key="k1", payload={"v": "again"}),
                 new_job(payload={"v": "keyless"}),
                 new_job(idempotency_key="k2", payload={"v": "b"}),
                 new_job(payload={"v": "keyless"})]
        out = store.insert(batch)
        assert [j.payload["v"] for j in out] == ["a", "first", "keyless", "a", "keyless"]
        assert out[1].id == kept.id and out[0] is out[3] is batch[0]
        assert out[2] is batch[2] and out[4] is batch[4] and out[2].id != out[4].id
        assert Job.objects.count() == 4
        assert not Job.objects.filter(id__in=[batch[1].id, batch[3].id]).exists()
        added = JobEvent.objects.filter(type="added")
        assert sorted(added.values_list("job_id", flat=True)) == sorted(
            [kept.id, batch[0].id, batch[2].id, batch[4].id])
        # The kept job is returned as stored, whatever the losing duplicate carried.
        assert Job.objects.get(id=kept.id).payload == {"v": "first"}

    def test_a_pruned_jobs_idempotency_key_is_free_again(self, store: Store) -> None:
        build_job("completed", idempotency_key="k")
        (same,) = store.insert([new_job(idempotency_key="k")])
        assert Job.objects.filter(idempotency_key="k").count() == 1
        assert same._state.adding is False and same.status == "completed"
        assert store.prune_jobs(days=1) == 1
        fresh = new_job(idempotency_key="k")
        assert store.insert([fresh])[0] is fresh
        assert Job.objects.get(idempotency_key="k").id == fresh.id

    def test_insert_counts_delays_and_expiries_from_the_database_clock(
            self, store: Store, request: pytest.FixtureRequest) -> None:
        job = new_job()
        job.enqueue_delay = 30.0
        job.enqueue_expires = 90.0
        t0 = db_clock()
        (out,) = store.insert([job])
        t1 = db_clock()
        row = Job.objects.get(id=out.id)
        assert (row.run_at, row.expires_at) == (out.run_at, out.expires_at)
        assert t0 + timedelta(seconds=30) <= row.run_at <= t1 + timedelta(seconds=30)
        assert t0 + timedelta(seconds=90) <= row.expires_at <= t1 + timedelta(seconds=90)

    # tokens and waits ------------------------------------------------------------------

    def test_check_token_times_out_a_token_past_its_timeout(self, store: Store) -> None:
        job = build_job("processing")
        soon = store.create_token(job.id, job.lease_token, "a", 3600, ["x"])
        never = store.create_token(job.id, job.lease_token, "b", None, [])
        assert soon is not None and never is not None
        assert never.timeout_at is None
        assert Job.objects.get(id=job.id).steps == {"s1": 1, "a": soon.id, "b": never.id}
        assert store.check_token(soon.id).status == "waiting"
        WaitToken.objects.filter(id=soon.id).update(
            timeout_at=timezone.now() - timedelta(minutes=1))
        t0 = db_clock()
        checked = store.check_token(soon.id)
        t1 = db_clock()
        assert checked.status == "timed_out" and t0 <= checked.completed_at <= t1
        assert store.check_token(never.id).status == "waiting"
        assert store.check_token("tok_nothing") is None
        assert not JobEvent.objects.filter(job_id=job.id).exists()

    def test_expire_tokens_takes_only_waiting_tokens_past_their_timeout(self,
                                                                        store: Store) -> None:
        past = timezone.now() - timedelta(minutes=1)
        jobs = [build_job("waiting_token") for _ in range(4)]
        tokens = [j.wait_token for j in jobs]
        WaitToken.objects.filter(id__in=tokens).update(timeout_at=past)
        other = build_job("waiting_token")  # its timeout is ahead
        done = make_token(other, timeout_at=past, status="completed")
        assert store.expire_tokens_of([tokens[0]]) == 1
        assert store.expire_tokens(limit=2) == 2
        assert store.expire_tokens() == 1
        assert store.expire_tokens() == 0
        statuses = dict(WaitToken.objects.values_list("id", "status"))
        assert [statuses[t] for t in tokens] == ["timed_out"] * 4
        assert statuses[other.wait_token] == "waiting" and statuses[done.id] == "completed"
        for job, token in zip(jobs, tokens, strict=True):
            assert Job.objects.get(id=job.id).status == "pending"
            assert snapshot(job.id).event_pairs == [
                ("resumed", {"token": token, "reason": "timed_out"})]
        assert Job.objects.get(id=other.id).status == "waiting"

    def test_waiting_for_a_token_resolved_meanwhile_resumes_at_once(self, store: Store) -> None:
        job = build_job("processing")
        token = store.create_token(job.id, job.lease_token, "k", None, [])
        WaitToken.objects.filter(id=token.id).update(status="completed", output={"ok": 1})
        o = outcome("waiting", job, wait_token=token.id)
        assert store.finish([o]) == {job.id}
        row = Job.objects.get(id=job.id)
        assert (row.status, row.wait_token, row.attempts) == ("pending", "", job.attempts - 1)
        assert snapshot(job.id).event_pairs == [
            ("waiting", o.event_data),
            ("resumed", {"token": token.id, "reason": "resolved before the wait"})]

    def test_resume_due_takes_due_time_waits_up_to_limit(self, store: Store) -> None:
        due = [build_job("waiting_due") for _ in range(3)]
        build_job("waiting_later")
        build_job("waiting_token")
        assert store.resume_due(limit=2) == 2
        assert store.resume_due(limit=2) == 1
        assert store.resume_due() == 0
        assert set(Job.objects.filter(status="pending").values_list("id", flat=True)) == {
            j.id for j in due}

    def test_expire_jobs_cancels_only_pending_jobs_past_their_expiry(self, store: Store) -> None:
        gone = build_job("pending_later", expires_at=timezone.now() - timedelta(seconds=1))
        build_job("pending_due", expires_at=timezone.now() + HOUR)
        for state in ("waiting_due", "processing"):
            build_job(state, expires_at=timezone.now() - HOUR)
        assert store.expire_jobs() == [gone.id]
        assert store.expire_jobs() == []
        assert Job.objects.filter(status="cancelled").count() == 1

    # reclaim and workers -----------------------------------------------------------------

    def test_reclaim_takes_back_only_jobs_of_dead_workers(self, store: Store) -> None:
        make_worker("alive", beat_ago=timedelta(seconds=5))
        make_worker("silent", beat_ago=timedelta(minutes=10))
        make_worker("stopped", beat_ago=timedelta(seconds=1), stopped=True)
        jobs = {owner: build_job("processing", lease_owner=owner)
                for owner in ("alive", "silent", "stopped", "ghost")}
        back = store.reclaim(60)
        assert sorted(back) == sorted((jobs[o].id, "pending")
                                      for o in ("silent", "stopped", "ghost"))
        assert Job.objects.get(id=jobs["alive"].id).status == "processing"
        assert store.reclaim(60) == []

    def test_reclaim_fails_a_job_with_no_attempt_left(self, store: Store) -> None:
        job = build_job("processing", attempts=3, max_attempts=3)
        t0 = db_clock()
        assert store.reclaim(60, owner=OWNER) == [(job.id, "failed")]
        t1 = db_clock()
        row = Job.objects.get(id=job.id)
        error = f"worker {OWNER} restarted while running attempt 3"
        assert (row.status, row.last_error, row.lease_token, row.lease_owner) == (
            "failed", error, None, "")
        assert t0 <= row.completed_at <= t1 and row.run_at == job.run_at
        assert [e["error"] for e in row.error_history] == [FIRST_ERROR["error"], error]
        assert snapshot(job.id).event_pairs == [
            ("reclaimed", {"worker": OWNER, "attempt": 3, "status": "failed"}),
            ("failed", {"error": error})]

    def test_reclaim_by_owner_takes_only_that_owners_jobs_up_to_limit(self,
                                                                      store: Store) -> None:
        make_worker("mine", beat_ago=timedelta(0))
        mine = [build_job("processing", lease_owner="mine") for _ in range(3)]
        theirs = build_job("processing", lease_owner="theirs")
        assert len(store.reclaim(60, owner="mine", limit=2)) == 2
        assert len(store.reclaim(60, owner="mine", limit=2)) == 1
        assert set(Job.objects.filter(status="pending").values_list("id", flat=True)) == {
            j.id for j in mine}
        assert Job.objects.get(id=theirs.id).status == "processing"

    def test_workers_register_beat_and_stop(self, store: Store) -> None:
        def worker() -> Worker:
            return Worker(id="wk", hostname="h", pid=7, queues=["a"], concurrency=2)

        t0 = db_clock()
        store.register_worker(worker())
        row = Worker.objects.get(id="wk")
        assert row.stopped_at is None and t0 <= row.last_heartbeat and t0 <= row.started_at
        assert store.heartbeat("wk", 3) is True and store.heartbeat("wk", 2) is True
        row2 = Worker.objects.get(id="wk")
        assert row2.jobs_done == 5 and row2.last_heartbeat >= row.last_heartbeat
        store.stop_worker("wk")
        assert Worker.objects.get(id="wk").stopped_at >= row2.last_heartbeat
        assert store.heartbeat("wk") is False
        store.register_worker(worker())  # the same id again: alive again
        assert Worker.objects.get(id="wk").stopped_at is None
        assert store.heartbeat("wk") is True
        assert store.heartbeat("nobody") is False

    # pruning ---------------------------------------------------------------------------

    def test_prune_jobs_deletes_only_jobs_finished_before_the_cutoff(self,
                                                                     store: Store) -> None:
        old = [build_job(s) for s in sorted(FINISHED)]
        recent = build_job("completed", completed_at=timezone.now() - HOUR)
        active = [build_job(s, created_at=timezone.now() - 9 * DAY)
                  for s in STATES if s not in FINISHED]
        store.add_event(old[0].id, "edited", {"fields": ["x"]})
        assert store.prune_jobs(days=1, batch=2) == 3
        left = set(Job.objects.values_list("id", flat=True))
        assert left == {recent.id, *(j.id for j in active)}
        assert JobEvent.objects.filter(job_id=old[0].id).count() == 1  # events stay

    def test_prune_jobs_counts_jobs_not_their_tokens(self, store: Store) -> None:
        job = build_job("completed")
        make_token(job)
        make_token(job)
        assert store.prune_jobs(days=1) == 1
        assert not WaitToken.objects.exists()

    def test_prune_events_deletes_only_events_before_the_cutoff(self, store: Store) -> None:
        job = build_job("completed")
        store.add_event(job.id, "edited", {"n": 1})
        store.add_event(job.id, "edited", {"n": 2})
        JobEvent.objects.filter(data={"n": 1}).update(created_at=timezone.now() - 2 * DAY)
        assert store.prune_events(days=1, batch=1) == 1
        assert snapshot(job.id).event_pairs == [("edited", {"n": 2})]

    # the helpers -----------------------------------------------------------------------

    @pytest.mark.parametrize("helper", ["complete", "fail", "release"])
    def test_the_helpers_write_the_documented_events(self, store: Store, helper: str,
                                                     request: pytest.FixtureRequest) -> None:
        """``complete``/``fail``/``release`` under the job's lease: the row as the runtime's
        outcome would leave it, and an event carrying the attempt, as docs/reference/api.md
        documents (``completed {"attempt"}``, ``failed {"attempt", "error", ...}``,
        ``released {"attempt", ...}``)."""
        job = build_job("processing")
        if helper == "complete":
            accepted = store.complete(job, result={"r": 1})
            want = ("completed", {"attempt": 2})
        elif helper == "fail":
            accepted = store.fail(job, ERROR, "tb")
            want = ("failed", {"attempt": 2, "error": ERROR})
        else:
            accepted = store.release(job)
            want = ("released", {"attempt": 2})
        assert accepted is True
        assert not getattr(store, helper)(job, *(["e"] if helper == "fail" else []))
        row = Job.objects.get(id=job.id)
        assert (row.status, row.lease_token, row.lease_owner) == (
            {"complete": "completed", "fail": "failed", "release": "pending"}[helper], None, "")
        if helper == "fail":
            assert row.last_error == ERROR and row.error_history[-1]["traceback"] == "tb"
        ((kind, data),) = snapshot(job.id).event_pairs
        assert kind == want[0]
        # completed's data is exactly {"attempt"}; the others hold at least these keys.
        if helper == "complete":
            assert data == want[1]
        else:
            assert {k: data.get(k) for k in want[1]} == want[1], data
