"""Include in your URLconf: ``path("edgejobs/", include("django_edgejobs.urls"))``."""

from django.urls import path

from .views import complete_token_view, job_status_view, staff_job_status_view

app_name = "django_edgejobs"

urlpatterns = [
    path("tokens/<str:signed>/complete/", complete_token_view, name="token-callback"),
    path("status/<str:signed>/", job_status_view, name="job-status"),
    path("jobs/<str:job_id>/status/", staff_job_status_view, name="staff-job-status"),
]
