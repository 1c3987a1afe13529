"""Following a job from a web page: ``status_url``, the signed status view and the staff one
(``django_edgejobs.urls``)."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse

from django_edgejobs import JobNotFound, enqueue, status_url
from django_edgejobs.models import Job
from django_edgejobs.services import status

pytestmark = pytest.mark.django_db


def get(url: str, client: Client | None = None, **headers):  # type: ignore[no-untyped-def]
    return (client or Client()).get(url, headers=headers)


def test_a_status_url_answers_the_jobs_state_as_json(register):
    register("t.export")
    job = enqueue("t.export", {"to": "ann@example.com"})
    url = status_url(job)
    assert url.startswith("/edgejobs/status/") and str(job.id) not in url
    response = get(url)
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    body = response.json()
    assert body == {"id": str(job.id), "status": "pending", "progress": None,
                    "updated_at": Job.objects.get(id=job.id).updated_at.isoformat(),
                    "finished": False}
    assert status_url(str(job.id)) and status_url(job.id)  # a job, its id, its id as text
    # Completed: the result, REDACT_KEYS masked as in the admin.
    Job.objects.filter(id=job.id).update(status="completed", progress=100,
                                         result={"rows": 3, "api_key": "sk-live"})
    body = get(url).json()
    assert body["finished"] and body["result"] == {"rows": 3, "api_key": "********"}
    # Failed: the error.
    Job.objects.filter(id=job.id).update(status="failed", last_error="ValueError: no rows")
    body = get(url).json()
    assert body["finished"] and body["error"] == "ValueError: no rows" and "result" not in body


def test_an_unchanged_job_answers_304_to_its_etag(register):
    register("t.export")
    job = enqueue("t.export")
    url = status_url(job)
    first = get(url)
    tag = first["ETag"]
    assert tag and first["Cache-Control"] == "private, no-cache"
    again = get(url, **{"If-None-Match": tag})
    assert again.status_code == 304 and again.content == b"" and again["ETag"] == tag
    Job.objects.filter(id=job.id).update(progress=40)
    changed = get(url, **{"If-None-Match": tag})
    assert changed.status_code == 200 and changed.json()["progress"] == 40
    assert changed["ETag"] != tag


def test_tampered_expired_and_gone_links_never_answer_the_job(register, monkeypatch):
    register("t.export")
    job = enqueue("t.export")
    url = status_url(job, expires_in=timedelta(minutes=5))
    signed = url.rstrip("/").rsplit("/", 1)[1]
    tampered = url.replace(signed, signed[:-2] + ("AA" if signed[-2:] != "AA" else "BB"))
    response = get(tampered)
    assert response.status_code == 403 and response.json()["error"] == "bad_signature"
    other = url.replace(signed, "x" * len(signed))
    assert get(other).status_code == 403
    now = time.time()
    monkeypatch.setattr(status.time, "time", lambda: now + 301)
    response = get(url)
    assert response.status_code == 410 and response.json()["error"] == "expired"
    assert str(job.id) not in response.content.decode()
    monkeypatch.undo()
    Job.objects.filter(id=job.id).delete()
    response = get(url)
    assert response.status_code == 404 and response.json()["error"] == "not_found"


def test_only_get_is_answered(register):
    register("t.export")
    url = status_url(enqueue("t.export"))
    assert Client().post(url).status_code == 405
    assert Client().delete(url).status_code == 405


@pytest.mark.parametrize("expires_in", [0, -1, True, "60", None, 10 ** 9, timedelta(0)])
def test_bad_arguments_are_refused_with_a_clear_error(register, expires_in):
    register("t.export")
    job = enqueue("t.export")
    with pytest.raises(ValueError, match="expires_in must be seconds"):
        status_url(job, expires_in=expires_in)
    with pytest.raises(ValueError, match="not a job or a job id: 'abc'"):
        status_url("abc")
    missing = uuid.uuid4()
    with pytest.raises(JobNotFound, match=str(missing)):
        status_url(missing)


def test_staff_with_view_job_read_any_jobs_status_without_a_signature(register):
    register("t.export")
    job = enqueue("t.export")
    url = reverse("django_edgejobs:staff-job-status", args=[job.id])
    assert get(url).status_code == 403  # anonymous
    staff = User.objects.create_user("s", password="pw", is_staff=True)
    client = Client()
    client.force_login(staff)
    assert client.get(url).status_code == 403  # staff without the permission
    staff.user_permissions.add(Permission.objects.get(codename="view_job",
                                                      content_type__app_label="django_edgejobs"))
    client.force_login(User.objects.get(pk=staff.pk))
    assert client.get(url).json()["id"] == str(job.id)
    nobody = User.objects.create_user("n", password="pw")  # not staff, even with the perm
    nobody.user_permissions.add(*staff.user_permissions.all())
    client.force_login(nobody)
    assert client.get(url).status_code == 403
    client.force_login(staff)
    assert client.get(reverse("django_edgejobs:staff-job-status",
                              args=["nope"])).status_code == 404
    assert client.get(reverse("django_edgejobs:staff-job-status",
                              args=[uuid.uuid4()])).status_code == 404
