"""Wait tokens: created by a running job, completed by anything outside it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from ..conf import get_settings
from ..models import Job, WaitToken
from ..models.clock import Now
from ..models.job import FINISHED_STATUSES
from ..store import get_store
from . import validation as v


@dataclass(frozen=True)
class TokenResult:
    """What ``ctx.wait_for_token`` returns: ``ok`` with the ``output``, or the ``error``."""

    ok: bool
    output: Any = None
    error: str | None = None


def get_token(token_id: Any):
    """The WaitToken with this id, or None."""
    if not isinstance(token_id, str) or not token_id:
        return None
    return WaitToken.objects.filter(id=token_id).first()


def complete_token(token_id: Any, output: Any = None) -> bool:
    """Complete a waiting token and resume the job waiting for it.

    True exactly once; False when the token is unknown, already completed, timed out, or its
    job has finished or was cancelled. Joins the caller's transaction."""
    text = v.encode_payload(output, max_bytes=get_settings().MAX_PAYLOAD_BYTES,
                            where="complete_token output")
    if not isinstance(token_id, str) or not token_id:
        return False
    store = get_store()
    tokens = WaitToken.objects.using(store.alias)
    with transaction.atomic(using=store.alias):
        # Lock the token: a concurrent completion waits here, then finds it completed.
        token = (tokens.select_for_update().filter(id=token_id, status=WaitToken.Status.WAITING)
                 .only("id", "job_id", "timeout_at").first())
        if token is None:
            return False
        if token.timeout_at is not None and token.timeout_at <= store.db_now():
            store.expire_tokens_of([token_id])  # past its time: the answer came too late
            return False
        if Job.objects.using(store.alias).filter(id=token.job_id,
                                                 status__in=FINISHED_STATUSES).exists():
            return False
        # The conditional update is the arbiter (a plain WHERE, re-checked after any wait).
        if not tokens.filter(id=token_id, status=WaitToken.Status.WAITING).update(
                status=WaitToken.Status.COMPLETED, output=json.loads(text), completed_at=Now()):
            return False
        store.resume_for_token(token.job_id, token_id, "completed")
    return True


def expire_timed_out_tokens() -> int:
    """Mark waiting tokens past their timeout as timed out and resume their jobs."""
    store, total = get_store(), 0
    while True:
        done = store.expire_tokens(limit=500)
        total += done
        if done < 500:
            return total
