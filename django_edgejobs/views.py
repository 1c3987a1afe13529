"""The signed token callback: an outside service or an email link completes a wait token."""

from __future__ import annotations

import json

from django.core import signing
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from .conf import get_settings
from .exceptions import InvalidPayload
from .models.token import read_signed
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
