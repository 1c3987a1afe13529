"""A small, realistic data set for the dashboard: a day of finished jobs, a backlog, live
workers running jobs, and cron schedules. Used by the browser tests and their screenshots."""

from __future__ import annotations

import random
import uuid
from datetime import timedelta

from django.utils import timezone

from django_edgejobs import add_cron
from django_edgejobs.models import Job, JobEvent, JobStatus, Worker

TYPES = [("shop.send_email", "emails"), ("shop.webhook", "webhooks"),
         ("shop.daily_report", "reports"), ("shop.refund_approval", "default")]


def populate(seed: int = 7) -> dict[str, Job]:
    rng = random.Random(seed)
    now = timezone.now()
    jobs: list[Job] = []

    def job(status: str, type_: str, queue: str, **fields) -> Job:  # type: ignore[no-untyped-def]
        j = Job(id=uuid.UUID(int=rng.getrandbits(128), version=4), type=type_, queue=queue,
                status=status, payload={"to": f"user{rng.randint(1, 999)}@example.com"},
                max_attempts=5, **fields)
        jobs.append(j)
        return j

    for minute in range(24 * 60):  # a day of traffic, busier in the last hours
        done_at = now - timedelta(minutes=minute, seconds=rng.randint(0, 59))
        for _ in range(rng.randint(0, 3 if minute > 180 else 6)):
            type_, queue = rng.choice(TYPES)
            wait = rng.expovariate(1 / 0.8)
            run = rng.expovariate(1 / (2.5 if type_ == "shop.daily_report" else 0.4))
            started = done_at - timedelta(seconds=run)
            failed = rng.random() < 0.04
            job(JobStatus.FAILED if failed else JobStatus.COMPLETED, type_, queue,
                run_at=started - timedelta(seconds=wait), created_at=started - timedelta(
                    seconds=wait), started_at=started, completed_at=done_at,
                attempts=5 if failed else 1, result=None if failed else {"sent": 1},
                last_error="ConnectionError: partner answered 503" if failed else "",
                error_history=[{"attempt": 5, "error": "ConnectionError: partner answered 503",
                                "traceback": "Traceback (most recent call last):\n  ...\n"
                                             "ConnectionError: partner answered 503",
                                "at": done_at.isoformat()}] if failed else [])
    for i in range(14):
        type_, queue = TYPES[i % 2]
        job(JobStatus.PENDING, type_, queue, run_at=now - timedelta(seconds=5 + i * 9),
            created_at=now - timedelta(seconds=5 + i * 9))
    for i in range(6):
        job(JobStatus.PENDING, "shop.send_email", "emails", run_at=now + timedelta(hours=i + 1),
            created_at=now - timedelta(minutes=i))
    for i in range(3):
        job(JobStatus.WAITING, "shop.refund_approval", "default",
            run_at=now + timedelta(days=1), created_at=now - timedelta(hours=i + 1),
            wait_token=f"tok_demo{i}")
    Worker.objects.bulk_create([
        Worker(id=f"web-{n}:4{n}12", hostname=f"web-{n}", pid=4012 + n,
               queues=["default", "emails", "webhooks", "reports"], concurrency=4,
               started_at=now - timedelta(hours=5), last_heartbeat=now - timedelta(seconds=n + 1))
        for n in (1, 2)
    ])
    for i, (type_, queue) in enumerate(TYPES[:3]):
        job(JobStatus.PROCESSING, type_, queue, run_at=now - timedelta(seconds=30),
            created_at=now - timedelta(seconds=30), started_at=now - timedelta(seconds=3 + i),
            attempts=1, lease_owner=f"web-{1 + i % 2}:4{1 + i % 2}12", progress=(i + 1) * 30)
    Job.objects.bulk_create(jobs, batch_size=500)
    JobEvent.objects.bulk_create(
        [JobEvent(job_id=j.id, type="added", created_at=j.created_at) for j in jobs],
        batch_size=500)
    add_cron("daily-report", "0 9 * * 1-5", "shop.daily_report", {"kind": "daily"},
             timezone="America/New_York")
    add_cron("partner-sync", "*/15 * * * *", "shop.webhook",
             {"url": "https://partner.example/hook", "event": "sync"})
    add_cron("weekly-digest", "30 7 * * 1", "shop.send_email", {"to": "team@example.com"},
             timezone="Europe/Paris")
    failed = next(j for j in jobs if j.status == JobStatus.FAILED)
    # What the workers' rollup service would have done by now: the day's latency, per minute.
    from django_edgejobs.services import rollup

    while rollup.roll_due(timezone.now()) >= rollup.PER_PASS:
        pass
    return {"failed": failed}
