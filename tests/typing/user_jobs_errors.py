"""Type-checked, never run: the misuses of ``user_jobs.py``'s handlers that mypy and pyright
must report. Each line marked ``# E`` must be reported by both, and no other line may be
(``tests/integration/test_typed_api.py``)."""

from __future__ import annotations

from django_edgejobs import JobContext

from .user_jobs import OrderIn, Receipt, charge, notify


def wrong(ctx: JobContext) -> str:
    charge.enqueue({"order_id": 7, "amount": 1.0})  # E
    charge.enqueue("order 7")  # E
    notify.enqueue({"to": "ann@example.com"})  # E
    notify.enqueue({"to": "ann@example.com", "subject": "x", "cc": "bob"})  # E
    charge.enqueue_on_commit(Receipt(order_id=1, charged=2.0))  # E
    charge.aenqueue(Receipt(order_id=1, charged=2.0))  # E
    receipt: Receipt = charge(OrderIn(order_id=1, amount=2.0), ctx)
    text: str = receipt  # E
    return text
