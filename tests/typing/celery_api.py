"""Type-checked, never run: the Celery-style calling API under mypy (with celery-types).

Each line marked ``# E: <code>`` must be reported by mypy with that error code, and no other
line may be (``tests/typing/test_celery_api_types.py`` checks both). The same calls are made
on a celery ``Task`` (typed by celery-types) and on a django-edgejobs handler, so a call site
that type-checks against Celery keeps type-checking after the migration, and misuse is caught
on both sides.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from celery import Celery

from django_edgejobs import job
from django_edgejobs.models import Job

app = Celery()
WHEN = datetime(2031, 1, 2, 3, 4, tzinfo=UTC)


@app.task
def celery_send_email(to: str, subject: str = "") -> None: ...


@job("typing.send-email", queue="emails")
def send_email(payload: dict[str, Any], ctx: Any) -> None: ...


# -- the same calls type-check on both -------------------------------------------------

celery_send_email.delay(to="a@example.com", subject="Hi")
celery_send_email.apply_async(kwargs={"to": "a"}, countdown=10, queue="emails", priority=5,
                              expires=60)
celery_send_email.apply_async(kwargs={"to": "a"}, eta=WHEN, expires=WHEN)

created: Job = send_email.delay(to="a@example.com", subject="Hi")
send_email.apply_async(kwargs={"to": "a"}, countdown=10, queue="emails", priority=5, expires=60)
send_email.apply_async(kwargs={"to": "a"}, eta=WHEN, expires=WHEN)
send_email.apply_async(None, {"to": "a"})
send_email.apply_async(kwargs={"to": "a"}, countdown=timedelta(minutes=1), tags=["welcome"],
                       max_retries=4, idempotency_key="welcome-1", timeout=30)
job_id: str = str(created.id)

# -- misuse that mypy reports on both ---------------------------------------------------

celery_send_email.apply_async(kwargs={"to": "a"}, countdown="10")  # E: arg-type
send_email.apply_async(kwargs={"to": "a"}, countdown="10")  # E: arg-type
celery_send_email.apply_async(kwargs={"to": "a"}, eta="2031-01-02")  # E: arg-type
send_email.apply_async(kwargs={"to": "a"}, eta="2031-01-02")  # E: arg-type
celery_send_email.apply_async(kwargs={"to": "a"}, priority="high")  # E: arg-type
send_email.apply_async(kwargs={"to": "a"}, priority="high")  # E: arg-type
celery_send_email.apply_async(kwargs=["to"])  # E: arg-type
send_email.apply_async(kwargs=["to"])  # E: arg-type
celery_send_email.apply_async(kwargs={"to": "a"}, expires="soon")  # E: arg-type
send_email.apply_async(kwargs={"to": "a"}, expires="soon")  # E: arg-type

# -- what mypy reports on django-edgejobs only: no equivalent here ----------------------

send_email.delay("a@example.com")  # E: arg-type
send_email.apply_async(args=("a@example.com",))  # E: arg-type
send_email.apply_async(kwargs={"to": "a"}, link=None)  # E: arg-type
send_email.apply_async(kwargs={"to": "a"}, task_id="my-id")  # E: arg-type
send_email.delay(to="a").get()  # E: attr-defined
