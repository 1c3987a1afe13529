"""The public endpoints of ``django_edgejobs.urls``: the signed token callback (an outside
service or an email link completes a wait token) and the job status (a web page follows a
job through ``status_url``, or a staff user with ``view_job`` by the job's id)."""

from __future__ import annotations

import json

from django.core import signing
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from .conf import get_settings
from .exceptions import InvalidPayload
from .models import Job
from .models.token import read_signed
from .services import status
from .services.jobs import parse_job_id
from .services.tokens import complete_token, get_token


def _error(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse({"ok": False, "error": code, "message": message}, status=status)


# CSRF-exempt on purpose, and only here: the signature in the URL is the credential, and a
# cross-site POST cannot forge it.
@csrf_exempt
@require_POST
def complete_token_view(request: HttpRequest, signed: str) -> JsonResponse:
    """POST a JSON body (the token's output; empty means null) to the signed URL."""
    limit = get_settings().TOKEN_CALLBACK_MAX_BYTES
    try:
        declared = int(request.headers.get("Content-Length") or 0)
    except ValueError:
        return _error(400, "bad_request", "Content-Length is not a number")
    if declared > limit:
        return _error(413, "too_large", f"the body may have at most {limit} bytes")
    try:
        token_id = read_signed(signed)
    except signing.SignatureExpired:
        return _error(410, "expired", "this link expired with its token")
    except signing.BadSignature:
        return _error(400, "bad_signature", "the link is not valid")
    body = request.read(limit + 1)
    if len(body) > limit:
        return _error(413, "too_large", f"the body may have at most {limit} bytes")
    try:
        output = json.loads(body) if body.strip() else None
    except (ValueError, UnicodeDecodeError):
        return _error(400, "bad_json", "the body must be JSON")
    try:
        done = complete_token(token_id, output)
    except InvalidPayload as exc:
        return _error(400, "bad_output", str(exc))
    if not done:
        token = get_token(token_id)
        if token is not None and token.status == token.Status.TIMED_OUT:
            return _error(410, "expired", "this link expired with its token")
        return _error(409, "already_used",
                      "the token was already completed or its job has ended")
    return JsonResponse({"ok": True, "token": token_id})


def _status_response(request: HttpRequest, job: Job) -> HttpResponse:
    tag = status.etag(job)
    if tag in [t.strip() for t in request.headers.get("If-None-Match", "").split(",")]:
        response = HttpResponse(status=304)
    else:
        response = JsonResponse(status.job_status(job))
    response["ETag"] = tag
    response["Cache-Control"] = "private, no-cache"
    return response


@require_GET
def job_status_view(request: HttpRequest, signed: str) -> HttpResponse:
    """GET the status of the job a ``status_url`` names: 403 when the signature is not
    valid, 410 when it expired, 404 when the job is gone (pruned)."""
    try:
        job_id = status.read_status_signature(signed)
    except signing.SignatureExpired:
        return _error(410, "expired", "this status link expired")
    except (signing.BadSignature, ValueError):
        return _error(403, "bad_signature", "the link is not valid")
    job = Job.objects.filter(id=job_id).first()
    if job is None:
        return _error(404, "not_found", "the job is gone")
    return _status_response(request, job)


@require_GET
def staff_job_status_view(request: HttpRequest, job_id: str) -> HttpResponse:
    """GET any job's status by its id, for a logged-in staff user with ``view_job``."""
    user = request.user
    if not (user.is_active and user.is_staff and user.has_perm("django_edgejobs.view_job")):
        return _error(403, "forbidden", "staff users with the view_job permission only")
    parsed = parse_job_id(job_id)
    job = Job.objects.filter(id=parsed).first() if parsed is not None else None
    if job is None:
        return _error(404, "not_found", "no job has this id")
    return _status_response(request, job)
