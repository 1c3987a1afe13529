"""Pause and resume a queue from the admin: ``admin:django_edgejobs_queue_action``, a POST
(CSRF-checked by the admin site) by a user with ``django_edgejobs.pause_queue``. The
dashboard's queue table carries the buttons; this view answers them and goes back."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponseBadRequest, HttpResponseRedirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from ..services.queues import pause_queue, resume_queue

#: The permission the buttons and the view require.
PAUSE_PERMISSION = "django_edgejobs.pause_queue"
ACTIONS = {"pause": (pause_queue, "paused", "was already paused"),
           "resume": (resume_queue, "resumed", "was not paused")}


def can_pause(request: HttpRequest) -> bool:
    return request.user.has_perm(PAUSE_PERMISSION)


def _bad(message: str) -> HttpResponseBadRequest:
    """A 400 naming the problem, as plain text: the message may quote what was posted."""
    return HttpResponseBadRequest(message, content_type="text/plain; charset=utf-8")


@require_POST
def queue_action_view(request: HttpRequest) -> HttpResponseRedirect | HttpResponseBadRequest:
    if not can_pause(request):
        raise PermissionDenied
    action = ACTIONS.get(request.POST.get("action", ""))
    if action is None:
        return _bad("action must be pause or resume")
    change, done, unchanged = action
    queue = request.POST.get("queue", "")
    try:
        changed = change(queue)
    except ValueError as exc:
        return _bad(str(exc))
    if changed:
        messages.success(request, f"Queue “{queue}” {done}.")
    else:
        messages.info(request, f"Queue “{queue}” {unchanged}.")
    back = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()},
                                           require_https=request.is_secure()):
        back = reverse("admin:django_edgejobs_dashboard")
    return HttpResponseRedirect(back)
