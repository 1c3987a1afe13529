"""The limited claim: jobs with a concurrency or rate limit, taken only while their keys have
room. The plain claim (``claim.py`` and the vendor SQL) never takes them.

One transaction per claim, in statements that each see what was committed before them:

1. (before the transaction) the candidates: due pending jobs of the queues that carry a limit,
   best first, skipping keys whose running jobs already fill their limit;
2. lock the candidates' keys, in key order (``_lock_limit_keys``: a ``LimitKey`` row each,
   ``SELECT ... FOR UPDATE``; PostgreSQL: an advisory lock each). Every other claim of those
   keys waits here until this one commits, and then sees what it took;
3. count, per key, the jobs running now (``processing``, the truth: a reclaimed or finished
   job has left it, so no counter can drift) and the attempts started within the rate
   window (``RateStart`` rows);
4. take the candidates in order while their keys have room; write their ``RateStart`` rows
   and ``processing`` events; delete the key's ``RateStart`` rows older than its window.

So at no moment do more than ``concurrency_limit`` jobs of a key run, and no window of
``rate_period`` seconds holds more than ``rate_limit`` starts of a key, however many workers
claim. See docs/explanation/flow-control.md.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import timedelta

from django.db import transaction
from django.db.models import Count, F

from ..models import Job, LimitKey, Queue, RateStart
from ..models import transitions as t
from ..models.job import LIMITED
from .claim import ClaimVerbs, JobTypes

#: Candidates read per claimed slot (at least ``MIN_SCAN``): jobs of keys that turn out to
#: have no room are skipped, so a claim looks a little further than it may take.
SCAN_FACTOR = 4
MIN_SCAN = 100


class LimitVerbs(ClaimVerbs):
    """``mark_limited``, ``limited_queues``, ``claim_limited``."""

    def mark_limited(self, queues: Sequence[str]) -> None:
        """Flag queues that hold limited jobs (in the caller's transaction, with the jobs):
        their workers then run ``claim_limited`` too. A write only the first time."""
        rows = Queue.objects.using(self.alias)
        have = set(rows.filter(name__in=queues, limited=True).values_list("name", flat=True))
        missing = [q for q in queues if q not in have]
        if missing:
            rows.bulk_create([Queue(name=q, limited=True) for q in missing],
                             update_conflicts=True, unique_fields=["name"],
                             update_fields=["limited"])

    def limited_queues(self, queues: Sequence[str]) -> list[str]:
        """Those of ``queues`` that ever held a limited job."""
        return sorted(Queue.objects.using(self.alias).filter(name__in=queues, limited=True)
                      .values_list("name", flat=True))

    def _lock_limit_keys(self, keys: Sequence[str]) -> None:
        """Hold each key until the transaction ends, in key order (no deadlock between two
        claims). A row per key, written if missing and locked; on SQLite the insert is the
        transaction's first write, which takes the database's write lock."""
        rows = LimitKey.objects.using(self.alias)
        rows.bulk_create([LimitKey(key=k) for k in keys], ignore_conflicts=True)
        list(rows.select_for_update().filter(key__in=keys).order_by("key")
             .values_list("key", flat=True))

    def claim_limited(self, owner: str, queues: Sequence[str], limit: int,
                      types: JobTypes | None = None) -> list[Job]:
        """Take up to ``limit`` due jobs with a concurrency or rate limit from ``queues``,
        as their limits allow (see the module's docstring)."""
        if limit <= 0 or not queues:
            return []
        jobs = Job.objects.using(self.alias)

        def candidates() -> list[Job]:
            paused = Queue.objects.using(self.alias).filter(paused=True).values("name")
            full = [row["concurrency_key"] for row in
                    jobs.filter(status=t.CLAIM.target).exclude(concurrency_key="")
                    .values("concurrency_key").annotate(n=Count("id"), cap=F("concurrency_limit"))
                    .filter(n__gte=F("cap")).order_by()]
            qs = (jobs.due().in_queues(queues).filter(LIMITED)
                  .exclude(queue__in=paused).exclude(concurrency_key__in=full))
            if types and types.only:
                qs = qs.filter(type__in=types.only)
            if types and types.exclude:
                qs = qs.exclude(type__in=types.exclude)
            return list(qs.order_by("-priority", "run_at").only(
                "id", "priority", "run_at", "concurrency_key", "concurrency_limit", "rate_key",
                "rate_limit", "rate_period")[:max(MIN_SCAN, limit * SCAN_FACTOR)])

        def run() -> list[Job]:
            found = candidates()
            if not found:
                return []
            ckeys = sorted({j.concurrency_key for j in found if j.concurrency_key})
            rkeys = sorted({j.rate_key for j in found if j.rate_key})
            token = uuid.uuid4()
            with transaction.atomic(using=self.alias):
                self._lock_limit_keys(sorted({f"c:{k}" for k in ckeys} | {f"r:{k}" for k in rkeys}))
                now = self.db_now()
                running = Counter(dict(
                    jobs.filter(status=t.CLAIM.target, concurrency_key__in=ckeys)
                    .values_list("concurrency_key").annotate(n=Count("id")).order_by()))
                # A key's window: the longest period among its candidates (the strictest).
                window: dict[str, float] = {}
                for j in found:
                    if j.rate_key:
                        window[j.rate_key] = max(window.get(j.rate_key, 0.0), j.rate_period or 0)
                starts = RateStart.objects.using(self.alias)
                started: Counter[str] = Counter()
                for key, period in window.items():
                    started[key] = starts.filter(
                        key=key, started_at__gt=now - timedelta(seconds=period)).count()
                chosen = []
                for j in found:
                    if j.concurrency_key and running[j.concurrency_key] >= (
                            j.concurrency_limit or 0):
                        continue
                    if j.rate_key and started[j.rate_key] >= (j.rate_limit or 0):
                        continue
                    chosen.append(j.id)
                    if j.concurrency_key:
                        running[j.concurrency_key] += 1
                    if j.rate_key:
                        started[j.rate_key] += 1
                    if len(chosen) == limit:
                        break
                if not chosen:
                    return []
                jobs.due().filter(id__in=chosen, status__in=t.CLAIM.sources).update(
                    status=t.CLAIM.target, attempts=F("attempts") + 1, lease_owner=owner,
                    lease_token=token, started_at=now, updated_at=now,
                )
                claimed = list(jobs.filter(id__in=chosen, lease_token=token))
                starts.bulk_create([RateStart(key=j.rate_key, started_at=now)
                                    for j in claimed if j.rate_key])
                for key, period in window.items():
                    starts.filter(key=key,
                                  started_at__lte=now - timedelta(seconds=period)).delete()
                self._claim_events(claimed)
            claimed.sort(key=lambda j: (-j.priority, j.run_at))
            return claimed

        return self.retrying(run)
