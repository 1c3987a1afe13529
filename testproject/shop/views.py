"""A page that follows a job with ``status_url`` and ``edgejobs-status.js`` (the browser test
of the status endpoint, and an example)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from django_edgejobs import status_url


def follow(request: HttpRequest, job_id: str) -> HttpResponse:
    return render(request, "shop/follow.html",
                  {"status_url": status_url(job_id, expires_in=600), "interval": 200})
