"""Payload schemas: ``@job(schema=...)`` with a TypedDict, a dataclass or a pydantic model."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, NotRequired, TypedDict

import pytest
from django.core.exceptions import ImproperlyConfigured

from django_edgejobs import InvalidPayload, edit_job, enqueue, enqueue_many, get_job, job
from django_edgejobs.exceptions import InvalidStoredPayload, PermanentError
from django_edgejobs.models import Job
from django_edgejobs.runtime.worker import Worker

pytestmark = pytest.mark.django_db


class Address(TypedDict):
    city: str
    zip: NotRequired[str]


class Email(TypedDict):
    to: str
    subject: str
    cc: NotRequired[list[str]]
    urgency: NotRequired[Literal["low", "high"]]
    address: NotRequired[Address | None]
    count: NotRequired[int]


class Tree(TypedDict):
    name: str
    children: list[Tree]


@dataclass
class Line:
    sku: str
    qty: int = 1


@dataclass
class Order:
    id: int
    lines: list[Line]
    note: str | None = None
    total: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.id < 0:
            raise ValueError("an order id is never negative")


def run() -> int:
    return Worker(["default"], worker_id="test-schemas").run_once()


@pytest.fixture
def seen() -> list[Any]:
    return []


@pytest.fixture
def email(register: Callable, seen: list[Any]) -> Any:
    return register("t.email", lambda payload, ctx: seen.append(payload), schema=Email)


@pytest.fixture
def order(register: Callable, seen: list[Any]) -> Any:
    return register("t.order", lambda payload, ctx: seen.append(payload), schema=Order)


def error_of(exc: pytest.ExceptionInfo[BaseException]) -> str:
    return str(exc.value)


# -- TypedDict ----------------------------------------------------------------------------


def test_a_typeddict_payload_is_stored_as_given_and_handed_over_as_a_dict(
        email: Any, seen: list[Any]) -> None:
    payload = {"to": "a@example.com", "subject": "Hi", "cc": ["b@example.com"],
               "address": {"city": "Oslo"}}
    job_ = enqueue("t.email", payload)
    assert Job.objects.get(id=job_.id).payload == payload
    assert run() == 1
    assert seen == [payload]
    assert type(seen[0]) is dict
    assert get_job(job_.id).status == "completed"


@pytest.mark.parametrize(("payload", "problem"), [
    ({"to": "a"}, "payload['subject'] is missing (required by Email)"),
    ({"to": 5, "subject": "s"}, "payload['to'] must be str, got int 5"),
    ({"to": "a", "subjet": "s"},
     "payload['subject'] is missing (required by Email); "
     "payload['subjet'] is not a field of Email; did you mean 'subject'?"),
    ({"to": "a", "subject": "s", "cc": ["b", 3]}, "payload['cc'][1] must be str, got int 3"),
    ({"to": "a", "subject": "s", "cc": "b"}, "payload['cc'] must be list[str], got str 'b'"),
    ({"to": "a", "subject": "s", "urgency": "now"},
     "payload['urgency'] must be 'low' or 'high', got str 'now'"),
    ({"to": "a", "subject": "s", "address": {"zip": 1}},
     "payload['address']['city'] is missing (required by Address); "
     "payload['address']['zip'] must be str, got int 1"),
    ({"to": "a", "subject": "s", "count": True}, "payload['count'] must be int, got bool True"),
    ({"to": "a", "subject": "s", "count": 1.0}, "payload['count'] must be int, got float 1.0"),
    (["a"], "the payload must be an object (Email), got a list"),
    (None, "payload['subject'] is missing (required by Email); "
           "payload['to'] is missing (required by Email)"),
])
def test_a_bad_payload_raises_naming_the_field_and_writes_nothing(
        email: Any, payload: Any, problem: str) -> None:
    with pytest.raises(InvalidPayload) as exc:
        enqueue("t.email", payload)
    assert error_of(exc) == f"enqueue('t.email'): payload does not match Email: {problem}"
    assert not Job.objects.exists()


def test_none_is_allowed_where_the_schema_says_so(email: Any) -> None:
    enqueue("t.email", {"to": "a", "subject": "s", "address": None})
    assert Job.objects.count() == 1


def test_a_recursive_typeddict_checks_every_level(register: Callable) -> None:
    register("t.tree", schema=Tree)
    enqueue("t.tree", {"name": "a", "children": [{"name": "b", "children": []}]})
    with pytest.raises(InvalidPayload, match=r"payload\['children'\]\[0\]\['children'\] is "
                                             r"missing \(required by Tree\)"):
        enqueue("t.tree", {"name": "a", "children": [{"name": "b"}]})


def test_enqueue_many_and_the_handler_shortcuts_check_too(email: Any) -> None:
    with pytest.raises(InvalidPayload, match=r"^enqueue_many item 1\('t.email'\): payload does "
                                             r"not match Email: payload\['to'\] is missing"):
        enqueue_many([{"type": "t.email", "payload": {"to": "a", "subject": "s"}},
                      {"type": "t.email", "payload": {"subject": "s"}}])
    with pytest.raises(InvalidPayload, match=r"payload\['to'\] is missing"):
        email.enqueue({"subject": "s"})
    assert not Job.objects.exists()


def test_edit_job_checks_a_new_payload_against_the_schema(email: Any) -> None:
    job_ = enqueue("t.email", {"to": "a", "subject": "s"})
    with pytest.raises(InvalidPayload, match=r"^edit_job\('t.email'\): payload does not match "
                                             r"Email: payload\['to'\] must be str, got int 1"):
        edit_job(job_.id, payload={"to": 1, "subject": "s"})
    assert edit_job(job_.id, payload={"to": "b", "subject": "s"})
    assert get_job(job_.id).payload == {"to": "b", "subject": "s"}


def test_many_problems_are_counted_not_all_listed(register: Callable) -> None:
    class Many(TypedDict):
        values: list[int]

    register("t.many", schema=Many)
    with pytest.raises(InvalidPayload) as exc:
        enqueue("t.many", {"values": ["x"] * 50})
    text = error_of(exc)
    assert text.count("must be int") == 8
    assert text.endswith("; and 1 more problem(s)")


# -- dataclass ----------------------------------------------------------------------------


def test_a_dataclass_payload_is_stored_with_defaults_and_handed_over_as_an_instance(
        order: Any, seen: list[Any]) -> None:
    job_ = enqueue("t.order", {"id": 7, "lines": [{"sku": "a"}, {"sku": "b", "qty": 2}],
                               "total": 3})
    stored = Job.objects.get(id=job_.id).payload
    assert stored == {"id": 7, "lines": [{"sku": "a", "qty": 1}, {"sku": "b", "qty": 2}],
                      "note": None, "total": 3, "meta": {}}
    assert run() == 1
    assert seen == [Order(id=7, lines=[Line("a"), Line("b", 2)], total=3)]
    assert isinstance(seen[0].lines[0], Line)


def test_an_instance_of_the_dataclass_can_be_enqueued(order: Any) -> None:
    job_ = order.enqueue(Order(id=1, lines=[Line("x", 4)], note="gift"))
    assert Job.objects.get(id=job_.id).payload == {
        "id": 1, "lines": [{"sku": "x", "qty": 4}], "note": "gift", "total": 0.0, "meta": {}}


def test_an_instance_holding_wrong_types_is_refused(order: Any) -> None:
    with pytest.raises(InvalidPayload, match=r"payload\['lines'\]\[0\]\['qty'\] must be int, "
                                             r"got str 'many'"):
        enqueue("t.order", Order(id=1, lines=[Line("x", "many")]))  # type: ignore[arg-type]


def test_post_init_errors_become_invalid_payload(order: Any) -> None:
    with pytest.raises(InvalidPayload, match=r"payload does not make a valid Order: ValueError: "
                                             "an order id is never negative"):
        enqueue("t.order", {"id": -1, "lines": []})
    assert not Job.objects.exists()


@pytest.mark.parametrize(("annotation", "problem"), [
    (datetime, "Holder.value has type datetime, which a plain payload schema cannot check"),
    (set[int], "Holder.value has type set[int]"),
    (dict[int, str], "Holder.value is dict[int, str]: JSON object keys are strings"),
    (Literal[1.5j], "Holder.value has type typing.Literal[1.5j]"),
])
def test_annotations_a_json_payload_cannot_hold_are_refused_at_registration(
        annotation: Any, problem: str) -> None:
    holder = dataclass(type("Holder", (), {"__annotations__": {"value": annotation}}))
    with pytest.raises(ImproperlyConfigured) as exc:
        job("t.holder", schema=holder)(lambda payload, ctx: None)
    assert error_of(exc).startswith("@job('t.holder'): " + problem)


@pytest.mark.parametrize("schema", [dict, 5, Order(id=1, lines=[])])
def test_a_schema_must_be_a_typeddict_dataclass_or_model(schema: Any) -> None:
    with pytest.raises(ImproperlyConfigured, match=r"schema must be a TypedDict, a dataclass "
                                                   r"or a pydantic model class"):
        job("t.bad-schema", schema=schema)(lambda payload, ctx: None)


# -- on run ---------------------------------------------------------------------------------


def test_a_stored_payload_that_no_longer_matches_fails_the_job_at_once(
        order: Any, seen: list[Any]) -> None:
    job_ = enqueue("t.order", {"id": 1, "lines": []}, max_attempts=3)
    Job.objects.filter(id=job_.id).update(payload={"lines": [{"sku": 5}]})
    assert run() == 1
    got = get_job(job_.id)
    assert seen == []  # the handler never ran
    assert (got.status, got.attempts) == ("failed", 1)  # permanent: no retry
    assert got.last_error == (
        "InvalidStoredPayload: the stored payload does not match Order, the schema of job type "
        "'t.order': payload['id'] is missing (required by Order); "
        "payload['lines'][0]['sku'] must be str, got int 5")
    assert got.error_history[0]["exception"] == (
        "django_edgejobs.exceptions.InvalidStoredPayload")
    assert issubclass(InvalidStoredPayload, PermanentError)
    assert issubclass(InvalidStoredPayload, InvalidPayload)


def test_unknown_stored_keys_are_ignored_on_run(order: Any, seen: list[Any]) -> None:
    """A payload enqueued by newer code (one more field) still runs on older workers."""
    job_ = enqueue("t.order", {"id": 1, "lines": [{"sku": "a"}]})
    Job.objects.filter(id=job_.id).update(payload={
        "id": 1, "lines": [{"sku": "a", "colour": "red"}], "coupon": "X"})
    assert run() == 1
    assert seen == [Order(id=1, lines=[Line("a")])]
    assert get_job(job_.id).status == "completed"


def test_async_handlers_receive_the_instance_too(register: Callable) -> None:
    got: list[Any] = []

    async def handler(payload: Order, ctx: Any) -> dict[str, int]:
        await asyncio.sleep(0)
        got.append(payload)
        return {"lines": len(payload.lines)}

    register("t.async-order", handler, schema=Order)
    job_ = enqueue("t.async-order", {"id": 2, "lines": [{"sku": "a"}]})
    run()
    assert got == [Order(id=2, lines=[Line("a")])]
    assert get_job(job_.id).result == {"lines": 1}


@pytest.mark.django_db(transaction=True)
def test_a_force_kill_child_builds_the_instance_too() -> None:
    """qa.typed-child (testproject/qa/jobs.py): force_kill with a dataclass schema."""
    import os

    job_ = enqueue("qa.typed-child", {"n": 3})
    Worker(["default"], worker_id="test-schemas").run_once()
    result = get_job(job_.id).result
    assert (result["class"], result["n"], result["label"]) == ("Count", 3, "count")
    assert result["pid"] != os.getpid()


def test_plain_schemas_work_without_pydantic(register: Callable,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pydantic", None)  # as if it were not installed
    register("t.plain", schema=Email)
    with pytest.raises(InvalidPayload, match=r"payload\['to'\] is missing"):
        enqueue("t.plain", {"subject": "s"})


# -- pydantic (skipped when it is not installed) --------------------------------------------


@pytest.fixture
def invoice_model() -> Any:
    pydantic = pytest.importorskip("pydantic")
    import datetime as dt
    from decimal import Decimal

    class Invoice(pydantic.BaseModel):
        number: int
        amount: Decimal
        due: dt.date
        email: str = pydantic.Field(pattern=r".+@.+")
        lines: list[str] = []

    return Invoice


@pytest.fixture
def invoice(register: Callable, seen: list[Any], invoice_model: Any) -> Any:
    return register("t.invoice", lambda payload, ctx: seen.append(payload),
                    schema=invoice_model)


def test_a_pydantic_payload_is_stored_as_json_and_handed_over_as_a_model(
        invoice: Any, invoice_model: Any, seen: list[Any]) -> None:
    import datetime as dt
    from decimal import Decimal

    job_ = enqueue("t.invoice", {"number": "12", "amount": "9.50", "due": "2031-01-02",
                                 "email": "a@b"})
    assert Job.objects.get(id=job_.id).payload == {
        "number": 12, "amount": "9.50", "due": "2031-01-02", "email": "a@b", "lines": []}
    run()
    assert seen == [invoice_model(number=12, amount=Decimal("9.50"), due=dt.date(2031, 1, 2),
                                  email="a@b")]
    assert isinstance(seen[0].due, dt.date)


def test_a_model_instance_can_be_enqueued(invoice: Any, invoice_model: Any) -> None:
    import datetime as dt

    job_ = invoice.enqueue(invoice_model(number=1, amount=2, due=dt.date(2031, 5, 6),
                                         email="x@y"))
    assert Job.objects.get(id=job_.id).payload["due"] == "2031-05-06"


def test_pydantic_errors_name_each_field(invoice: Any) -> None:
    with pytest.raises(InvalidPayload) as exc:
        enqueue("t.invoice", {"number": "twelve", "amount": "1", "email": "nobody"})
    text = error_of(exc)
    assert text.startswith("enqueue('t.invoice'): payload does not match Invoice: ")
    assert "payload['number']: Input should be a valid integer" in text
    assert "(got str 'twelve')" in text
    assert "payload['due']: Field required" in text
    assert "payload['email']: String should match pattern" in text
    assert not Job.objects.exists()


def test_a_stored_payload_the_model_refuses_fails_at_once(invoice: Any, seen: list[Any]) -> None:
    job_ = enqueue("t.invoice", {"number": 1, "amount": "1", "due": "2031-01-02",
                                 "email": "a@b"})
    Job.objects.filter(id=job_.id).update(payload={"number": 1, "amount": "x",
                                                   "due": "2031-01-02", "email": "a@b"})
    run()
    got = get_job(job_.id)
    assert seen == []
    assert (got.status, got.attempts) == ("failed", 1)
    assert got.last_error == (
        "InvalidStoredPayload: the stored payload does not match Invoice, the schema of job "
        "type 't.invoice': payload['amount']: Input should be a valid decimal (got str 'x')")


def test_the_models_own_extra_setting_applies(register: Callable) -> None:
    pydantic = pytest.importorskip("pydantic")

    class Strict(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(extra="forbid")
        name: str

    register("t.strict", schema=Strict)
    with pytest.raises(InvalidPayload, match=r"payload\['nam'\]: Extra inputs are not "
                                             "permitted"):
        enqueue("t.strict", {"name": "a", "nam": "b"})


def test_pydantic_dataclasses_are_models_too(register: Callable) -> None:
    pydantic = pytest.importorskip("pydantic")

    @pydantic.dataclasses.dataclass
    class Point:
        x: int
        y: int = 0

    got: list[Any] = []
    register("t.point", lambda payload, ctx: got.append(payload), schema=Point)
    job_ = enqueue("t.point", {"x": "3"})
    assert Job.objects.get(id=job_.id).payload == {"x": 3, "y": 0}
    run()
    assert got == [Point(x=3)]
