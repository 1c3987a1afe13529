import pytest
from django.urls import reverse

from tests.admin.conftest import make_job

pytestmark = pytest.mark.django_db


def test_pages_render(admin_client):
    job = make_job("failed", error_history=[{"attempt": 1, "error": "boom", "traceback": "tb",
                                             "at": "x"}], last_error="boom")
    for url in [reverse("admin:django_edgejobs_job_changelist"),
                reverse("admin:django_edgejobs_job_change", args=[job.pk]),
                reverse("admin:django_edgejobs_dashboard"),
                reverse("admin:app_list", args=["django_edgejobs"]),
                reverse("admin:django_edgejobs_cronschedule_changelist"),
                reverse("admin:django_edgejobs_cronschedule_add"),
                reverse("admin:django_edgejobs_waittoken_changelist"),
                reverse("admin:django_edgejobs_worker_changelist"),
                reverse("admin:django_edgejobs_jobevent_changelist"),
                reverse("admin:django_edgejobs_cache"),
                ]:
        r = admin_client.get(url)
        assert r.status_code == 200, (url, r.status_code)
