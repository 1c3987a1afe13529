"""The job-store contract (``contract.StoreContract``), run against every store of this run's
database: the portable ORM ``Store`` and the vendor's (``SQLiteStore`` or ``PostgresStore``;
the vendor store of another database is not run). The same assertions pass for both: the
vendor store and the portable store have the same effects for the same inputs."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from django_edgejobs.models import Job, JobEvent, WaitToken
from django_edgejobs.models.transitions import TRANSITIONS
from django_edgejobs.store import get_store
from django_edgejobs.store.base import Store

from .contract import (
    ALIAS,
    ALLOWED,
    VERBS,
    StoreContract,
    new_job,
    normalized,
    outcome,
    snapshot,
    store_classes,
)

pytestmark = pytest.mark.django_db

CLASSES = store_classes()


@pytest.fixture(params=CLASSES, ids=[c.__name__ for c in CLASSES])
def store(request: pytest.FixtureRequest, db: None) -> Iterator[Store]:
    yield request.param(ALIAS)


@pytest.fixture
def other_store(store: Store) -> Store:
    """Another store over the same tables: the vendor one beside the portable one, and back."""
    others = [c for c in CLASSES if c is not type(store)] or CLASSES
    return others[0](ALIAS)


class TestStoreContract(StoreContract):
    pass


def test_get_store_picks_the_vendor_store_that_runs_here() -> None:
    assert type(get_store(ALIAS)) is CLASSES[-1]


def _script(store: Store) -> tuple[list[object], list[dict[str, object]]]:
    """A day in a queue, through one store's verbs only: what each verb returned (ids by
    position) and every job's rows, events and tokens at the end (normalized)."""
    jobs = store.insert([new_job(payload={"n": n}, priority=p, idempotency_key=key)
                         for n, (p, key) in enumerate([(5, "a"), (5, None), (1, "c"),
                                                       (0, None), (9, "a")])])
    assert jobs[4] is jobs[0]  # key "a" repeated in the batch: the first job stands for both
    pos = {j.id: n for n, j in reversed(list(enumerate(jobs)))}
    said: list[object] = [[pos[j.id] for j in jobs]]
    first = store.claim("w1", ["default"], 3)
    said.append([pos[j.id] for j in first])
    one, two, three = first
    said.append(store.set_progress(one.id, one.lease_token, 50))
    said.append(store.save_steps(two.id, two.lease_token, {"x": 1}))
    token = store.create_token(three.id, three.lease_token, "t", None, ["k"])
    names = {token.id: "token"}
    stale = outcome("completed", two, uuid.uuid4())
    retry = outcome("retry", two)
    retry.delay = 0
    accepted = store.finish([outcome("completed", one), retry, stale,
                             outcome("waiting", three, wait_token=token.id)])
    said.append(sorted(pos[i] for i in accepted))
    said.append(store.resume_for_token(three.id, token.id, "completed"))
    second = store.claim("w2", ["default"], 10)
    said.append([pos[j.id] for j in second])
    by_pos = {pos[j.id]: j for j in second}
    said.append(sorted(pos[i] for i in store.finish([
        outcome("failed", by_pos[1]), outcome("released", by_pos[2])])))
    said.append([(pos[i], s) for i, s in store.reclaim(60, owner="w2")])
    said.append(sorted(pos[i] for i in store.held_leases({j.id: j.lease_token for j in second})))
    return said, [normalized(snapshot(j.id), ids=names) for j in jobs[:4]]


@pytest.mark.skipif(len(CLASSES) < 2, reason="no vendor store for this database")
def test_the_portable_and_the_vendor_store_leave_the_same_history(db: None) -> None:
    """The same calls through each store: the same returns, rows, events and tokens."""
    runs = []
    for cls in CLASSES:
        runs.append(_script(cls(ALIAS)))
        WaitToken.objects.all().delete()
        Job.objects.all().delete()
        JobEvent.objects.all().delete()
    assert runs[0] == runs[1]
    said, rows = runs[0]
    assert said[1] == [0, 1, 2]  # priority 5, 5 (older first), then 1
    assert [r["row"]["status"] for r in rows] == ["completed", "failed", "pending", "pending"]


# The contract's table and the code's transition table must agree: the states a verb may act
# from are its transition's sources, and it ends in the transition's target with its event.
VERB_TRANSITIONS = {
    "claim": "claim", "finish:completed": "complete", "finish:retry": "retry",
    "finish:failed": "fail", "finish:wait_time": "wait", "finish:wait_token": "wait",
    "finish:released": "release", "finish:released_later": "release",
    "resume_due": "resume", "resume_for_token": "resume", "expire_tokens": "resume",
    "expire_jobs": "expire", "reclaim:timeout": "reclaim", "reclaim:owner": "reclaim",
}


@pytest.mark.parametrize("verb", sorted(VERB_TRANSITIONS))
def test_the_contract_agrees_with_the_transition_table(verb: str) -> None:
    transition = {x.name: x for x in TRANSITIONS}[VERB_TRANSITIONS[verb]]
    statuses = {state.split("_")[0] for state in ALLOWED[verb]}
    assert statuses <= set(transition.sources)
    assert VERBS[verb].changes["status"] == transition.target
    assert VERBS[verb].events[-1][0] == transition.event
