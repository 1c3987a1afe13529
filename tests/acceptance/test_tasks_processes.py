"""Acceptance: Tasks written with Django's own API (testproject/shop/tasks.py), enqueued
through EdgeJobsBackend, run in a real ``runworker`` process."""

from __future__ import annotations

import pytest
from django.tasks import TaskResultStatus, default_task_backend
from shop.models import Order
from shop.tasks import count_orders, flaky_total, send_receipt

from django_edgejobs import get_job, get_job_events

pytestmark = pytest.mark.acceptance

FAST = {"POLL_INTERVAL": 0.1, "HEARTBEAT_INTERVAL": 0.5, "WORKER_TIMEOUT": 3}


def test_tasks_enqueued_through_the_backend_run_in_a_worker_process(workers, wait_exit):
    order = Order.objects.create(customer_email="ada@example.com", total_cents=1999)
    receipt = send_receipt.enqueue(order.pk)
    flaky = flaky_total.enqueue([order.pk], fail_attempts=1)
    counted = count_orders.enqueue()
    assert get_job(receipt.id).type == "task:shop.tasks.send_receipt"  # an ordinary job

    proc = workers.start("--burst", edgejobs=FAST)
    assert wait_exit(proc, timeout=60) == 0, workers.output(proc)
    output = workers.output(proc)

    receipt = send_receipt.get_result(receipt.id)
    assert receipt.status == TaskResultStatus.SUCCESSFUL, receipt.errors
    assert receipt.return_value == {"order_id": order.pk, "sent": 1, "pid": proc.pid}
    assert len(receipt.worker_ids) == 1 and f":{proc.pid}:" in receipt.worker_ids[0]
    job = get_job(receipt.id)
    assert (job.queue, job.max_attempts, job.timeout, job.tags) == (
        "emails", 5, 60, ["receipts"])

    flaky = default_task_backend.get_result(flaky.id)
    assert flaky.status == TaskResultStatus.SUCCESSFUL and flaky.attempts == 2
    assert flaky.return_value == {"total_cents": 1999, "attempt": 2, "pid": proc.pid,
                                  "result_id": flaky.id}
    [error] = flaky.errors
    assert error.exception_class is ConnectionError
    assert error.traceback.endswith("ConnectionError: attempt 1 failed on purpose\n")
    assert [e.type for e in get_job_events(flaky.id)] == [
        "added", "processing", "retried", "processing", "completed"]

    assert count_orders.get_result(counted.id).return_value == 1  # an async Task

    # Django's signals were sent in the worker (Django logs them).
    assert f"Task id={receipt.id} path=shop.tasks.send_receipt state=RUNNING" in output
    assert f"Task id={flaky.id} path=shop.tasks.flaky_total state=SUCCESSFUL" in output
    assert "type=task:shop.tasks.send_receipt attempt=1/5" in output
