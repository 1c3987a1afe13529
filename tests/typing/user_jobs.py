"""Type-checked, never run: a user's jobs module, clean under ``mypy --strict`` and pyright
(``tests/integration/test_typed_api.py`` checks both). ``@job`` keeps the handler's payload
and return types: ``JobHandler[OrderIn, Receipt]``, whose ``enqueue`` takes an ``OrderIn``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict

from django_edgejobs import JobContext, JobHandler, job
from django_edgejobs.models import Job


@dataclass
class OrderIn:
    order_id: int
    amount: float


@dataclass
class Receipt:
    order_id: int
    charged: float


class Notice(TypedDict):
    to: str
    subject: str


@job("typing.charge", queue="billing", schema=OrderIn)
def charge(payload: OrderIn, ctx: JobContext) -> Receipt:
    ctx.set_progress(50)
    return Receipt(order_id=payload.order_id, charged=payload.amount)


@job("typing.notify", schema=Notice, on_invalid="fail")
async def notify(payload: Notice, ctx: JobContext) -> None:
    return None


def place(order_id: int) -> list[Job]:
    handler: JobHandler[OrderIn, Receipt] = charge
    first = handler.enqueue(OrderIn(order_id=order_id, amount=9.5), priority=5)
    second = notify.enqueue({"to": "ann@example.com", "subject": "paid"})
    third = charge.enqueue_on_commit(OrderIn(order_id=order_id, amount=1.0))
    return [first, second, third]


def charged(ctx: JobContext) -> float:
    receipt = charge(OrderIn(order_id=1, amount=2.0), ctx)  # still a plain function
    return receipt.charged


async def place_later(order_id: int) -> Job:
    return await charge.aenqueue(OrderIn(order_id=order_id, amount=3.0), delay=60)
