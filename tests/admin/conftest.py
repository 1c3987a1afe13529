"""Fixtures of the admin tests: users with chosen permissions and jobs in every state."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.utils import timezone

from django_edgejobs import enqueue
from django_edgejobs.models import Job, JobStatus


@pytest.fixture(autouse=True)
def handlers(register: Callable) -> None:
    register("t.a", lambda payload, ctx: None)
    register("t.b", lambda payload, ctx: None, queue="bees")


@pytest.fixture
def staff(db) -> Callable[..., Client]:  # type: ignore[no-untyped-def]
    """``staff("retry_job", "view_job")``: a logged-in client of a staff user with those
    permissions of this app (codenames)."""
    counter = iter(range(1000))

    def make(*codenames: str, csrf: bool = False) -> Client:
        user = User.objects.create_user(f"staff{next(counter)}", password="pw", is_staff=True)
        perms = Permission.objects.filter(content_type__app_label="django_edgejobs",
                                          codename__in=codenames)
        assert perms.count() == len(set(codenames)), f"unknown codename in {codenames}"
        user.user_permissions.set(perms)
        client = Client(enforce_csrf_checks=csrf)
        client.force_login(user)
        return client

    return make


def make_job(status: str = JobStatus.PENDING, type_: str = "t.a", **fields: Any) -> Job:
    """A job in ``status`` (written directly, as a worker would have), with field values."""
    job = enqueue(type_, fields.pop("payload", {}), tags=fields.pop("tags", None),
                  queue=fields.pop("queue", None))
    now = timezone.now()
    if status in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED):
        fields.setdefault("completed_at", now)
        fields.setdefault("started_at", now - timedelta(seconds=2))
    if status == JobStatus.PROCESSING:
        fields.setdefault("started_at", now)
        fields.setdefault("lease_owner", "w-test")
    Job.objects.filter(id=job.id).update(status=status, **fields)
    return Job.objects.get(id=job.id)


@pytest.fixture(autouse=True)
def fast_passwords(settings) -> None:  # type: ignore[no-untyped-def]
    """Users are made per test: a cheap hasher keeps setup fast (never in production)."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
