"""Example Tasks written with Django's own API (``django.tasks``).

``settings.TASKS`` points at ``django_edgejobs.tasks.EdgeJobsBackend``, so these run on the
same job store and the same ``runworker`` as the ``@job`` handlers of ``shop/jobs.py``, and
show up in the same admin (type ``task:shop.tasks.<name>``). The keyword arguments after
Django's own (``max_attempts``, ``retry_delay``, ``timeout``, ``tags`` ...) are this app's
job options.
"""

import os

from django.core.mail import send_mail
from django.tasks import task

from .models import Order


@task(queue_name="emails", max_attempts=5, retry_delay=30, timeout=60, tags=["receipts"])
def send_receipt(order_id: int) -> dict:
    """Email the receipt of an order. An SMTP error raises, and the task is retried."""
    order = Order.objects.get(pk=order_id)
    sent = send_mail(
        subject=f"Receipt for order {order.pk}",
        message=f"Total: {order.total_cents / 100:.2f}",
        from_email="shop@example.com",
        recipient_list=[order.customer_email],
    )
    return {"order_id": order.pk, "sent": sent, "pid": os.getpid()}


@task(takes_context=True, max_attempts=3, retry_delay=0)
def flaky_total(context, order_ids: list, fail_attempts: int = 0) -> dict:
    """Sum some orders; fails its first ``fail_attempts`` attempts (to show retries)."""
    if context.attempt <= fail_attempts:
        raise ConnectionError(f"attempt {context.attempt} failed on purpose")
    total = sum(Order.objects.filter(pk__in=order_ids).values_list("total_cents", flat=True))
    return {"total_cents": total, "attempt": context.attempt, "pid": os.getpid(),
            "result_id": context.task_result.id}


@task(priority=10)
async def count_orders() -> int:
    """An async Task: the worker runs it on an event loop of its own."""
    return await Order.objects.acount()
