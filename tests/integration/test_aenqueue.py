"""``aenqueue`` and ``JobHandler.aenqueue``: enqueue from async code. Input is checked in the
coroutine (bad input raises before any hop to Django's sync thread); the write is one hop."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypedDict

import pytest
from asgiref.sync import async_to_sync

from django_edgejobs import InvalidPayload, UnknownJobType, aenqueue, get_job
from django_edgejobs.models import Job

pytestmark = pytest.mark.django_db(transaction=True)


class Signup(TypedDict):
    email: str


@pytest.fixture
def hops(thread_hops: Callable[[Any], list[str]]) -> list[str]:
    import django_edgejobs.services.enqueue as module

    return thread_hops(module)


def test_aenqueue_writes_the_job_in_one_hop(register: Callable, hops: list[str]) -> None:
    register("t.async-enq")
    job = async_to_sync(aenqueue)("t.async-enq", {"n": 1}, priority=3, tags=["a"])
    stored = get_job(job.id)
    assert (stored.status, stored.payload, stored.priority, stored.tags) == (
        "pending", {"n": 1}, 3, ["a"])
    assert hops == ["_write"]


def test_bad_input_raises_in_the_coroutine_before_any_hop(register: Callable,
                                                          hops: list[str]) -> None:
    register("t.async-enq")
    with pytest.raises(UnknownJobType, match=r"aenqueue: .*'t\.nope'"):
        async_to_sync(aenqueue)("t.nope", {})
    with pytest.raises(InvalidPayload, match=r"aenqueue\('t.async-enq'\)"):
        async_to_sync(aenqueue)("t.async-enq", {"x": {1, 2}})
    with pytest.raises(ValueError, match="priority"):
        async_to_sync(aenqueue)("t.async-enq", {}, priority="high")
    assert hops == [] and not Job.objects.exists()


def test_the_handler_shortcut_and_on_invalid(register: Callable, hops: list[str]) -> None:
    handler = register("t.async-signup", schema=Signup, on_invalid="discard")
    assert async_to_sync(handler.aenqueue)({"name": "Ann"}) is None
    assert hops == [] and not Job.objects.exists()
    job = async_to_sync(handler.aenqueue)({"email": "ann@example.com"}, delay=60)
    assert get_job(job.id).status == "pending" and hops == ["_write"]
    failed = async_to_sync(handler.aenqueue)({}, on_invalid="fail")
    assert get_job(failed.id).status == "failed"
