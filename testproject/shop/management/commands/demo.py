"""Enqueue sample jobs and run a worker until they are all finished, then print them.

Besides retries and failures it shows a durable wait (``ctx.wait_for``), a wait token that the
demo completes itself (``complete_token``), a cron schedule firing every 5 seconds, the edge
cache, and where the admin is. It can be run again on the same database.
"""

import logging
import threading
import time

from django.conf import settings
from django.core.cache import caches
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from shop.models import Order

from django_edgejobs import (
    add_cron,
    complete_token,
    edit_cron,
    enqueue,
    enqueue_many,
    get_job,
    get_job_events,
    get_token,
    list_crons,
    list_jobs,
    pause_cron,
)
from django_edgejobs.runtime.process import Process
from django_edgejobs.runtime.worker import Worker

CRON_NAME = "demo-tick"
CRON_EXPR = "* * * * * */5"  # six fields: seconds come last, so this is every 5 seconds
CACHE = "edge_db"  # testproject's DatabaseEdgeCache (no Redis needed)
WAIT_SECONDS = 3
DEADLINE_SECONDS = 45
ADMIN_USER = ADMIN_PASSWORD = "admin"  # what `make admin` creates (see the Makefile)
ACTIVE = ["pending", "processing", "waiting"]


class Command(BaseCommand):
    help = "Enqueue sample jobs and run the worker until they are done."

    def handle(self, *args, **options):
        logging.getLogger("django_edgejobs").setLevel(logging.INFO)
        tag = f"demo:{int(time.time())}"
        Order.objects.bulk_create(
            [Order(customer_email=f"customer{n}@example.com", total_cents=1000 + n)
             for n in range(5)])
        enqueue_many([
            {"type": "shop.send_email", "payload": {"to": f"customer{n}@example.com"},
             "tags": [tag, "welcome"]} for n in range(5)
        ])
        enqueue("shop.daily_report", {"kind": "daily"}, tags=[tag], priority=10)
        enqueue("shop.webhook", {"url": "https://partner.example/hooks", "event": "order.paid",
                                 "simulate_failures": 2}, tags=[tag])
        enqueue("shop.send_email", {"to": "not-an-address"}, tags=[tag])
        enqueue("shop.send_email", {"to": "later@example.com"}, delay=2, tags=[tag])
        follow_up = enqueue("shop.follow_up", {"to": "customer0@example.com",
                                               "wait_seconds": WAIT_SECONDS}, tags=[tag])
        refund = enqueue("shop.refund_approval", {"order_id": Order.objects.latest("pk").pk,
                                                  "approver": "boss@example.com",
                                                  "timeout": 300}, tags=[tag])
        schedule = self.start_schedule(tag)
        self.stdout.write(
            f"enqueued 11 jobs tagged {tag} and turned on the cron schedule {CRON_NAME!r} "
            f"({schedule.describe()}); running a worker until they finish\n")

        # The outside world, while the worker runs: an approver answers the wait token, and
        # the cron schedule is paused again once it has fired.
        done, found, errors = threading.Event(), {}, []
        helper = threading.Thread(target=self.outside, name="demo-outside", daemon=True,
                                  args=(tag, refund.id, done, found, errors))
        deadline = time.monotonic() + DEADLINE_SECONDS

        def all_finished():
            if errors or time.monotonic() > deadline:
                return True
            return done.is_set() and not list_jobs(tags=[tag], status=ACTIVE, limit=1)

        helper.start()
        try:
            # The worker, with the cron scheduler and the maintenance services beside it
            # (the supervisor resumes the durable wait), as in runworker.
            Process(Worker(poll_interval=0.2, stop_when=all_finished, shutdown_timeout=5)).run()
        finally:
            done.set()
            helper.join(5)
            pause_cron(CRON_NAME)  # never leave a 5-second schedule on for the next runworker
        if errors:
            raise CommandError(f"the demo failed: {errors[0]!r}")
        if list_jobs(tags=[tag], status=ACTIVE, limit=1) or "tick" not in found:
            raise CommandError(f"the demo did not finish within {DEADLINE_SECONDS} s")

        self.stdout.write(f"\n{'type':22} {'status':10} {'attempts':9} result\n")
        for j in reversed(list_jobs(tags=[tag], limit=None)):
            shown = j.result if j.status == "completed" else j.last_error
            attempts = f"{j.attempts}/{j.max_attempts}"
            self.stdout.write(f"{j.type:22} {j.status:10} {attempts:9} {shown}\n")
        self.summary(tag, schedule, follow_up.id, refund.id, found)

    # -- the cron schedule -------------------------------------------------------------------

    def start_schedule(self, tag):
        """Create the demo's schedule, or turn it on again (a second run finds it paused).

        Its jobs carry this run's tag, so the worker's stop condition covers them."""
        definition = {"payload": {"cache": CACHE}, "tags": [tag], "queue": "default",
                      "max_attempts": 1}
        if not edit_cron(CRON_NAME, cron=CRON_EXPR, type="shop.tick", enabled=True,
                         **definition):
            add_cron(CRON_NAME, CRON_EXPR, "shop.tick", **definition)
        return next(s for s in list_crons() if s.name == CRON_NAME)

    # -- what happens outside the worker ----------------------------------------------------

    def outside(self, tag, refund_id, done, found, errors):
        try:
            # 1. The approver: once the job waits for its token, complete the token.
            job = self.poll(done, lambda: (lambda j: j if j.status == "waiting"
                                           and j.wait_token else None)(get_job(refund_id)))
            if job is None:
                return
            token = get_token(job.wait_token)
            found["token"] = token.id
            found["url"] = settings.SHOP_BASE_URL + token.callback_path()
            self.stdout.write(f"[demo] {job.type} is waiting for token {token.id}; the "
                              f"approver answers it: complete_token({token.id!r}, "
                              "{'approved': True})\n")
            found["completed"] = complete_token(token.id, {"approved": True})
            # 2. The cron schedule: wait for its first run, then pause it.
            ticked = self.poll(done, lambda: list_jobs(tags=[tag, f"cron:{CRON_NAME}"],
                                                       status="completed", limit=1))
            if ticked:
                found["tick"] = ticked[0].id
                pause_cron(CRON_NAME)
                self.stdout.write(f"[demo] cron {CRON_NAME!r} fired (job {ticked[0].id}); "
                                  "paused it again\n")
        except Exception as exc:  # reported by handle()
            errors.append(exc)
        finally:
            done.set()
            connection.close()  # this thread's own connection

    @staticmethod
    def poll(done, predicate, interval=0.1):
        while not done.is_set():
            value = predicate()
            if value:
                return value
            time.sleep(interval)
        return None

    # -- the summary -------------------------------------------------------------------------

    def summary(self, tag, schedule, follow_up_id, refund_id, found):
        w = self.stdout.write
        w("\nWhat happened:\n")
        events = [e.type for e in get_job_events(follow_up_id)]
        w(f"- durable wait: shop.follow_up sent an email, ctx.wait_for(seconds={WAIT_SECONDS}) "
          "suspended it with no worker slot held, then it resumed and sent the second one\n"
          f"    events: {' > '.join(events)}\n")
        refund = get_job(refund_id)
        w(f"- wait token: shop.refund_approval waited for token {found['token']} until the demo "
          f"completed it (complete_token -> {found['completed']}); result {refund.result}\n"
          f"    a person would POST to its signed callback URL instead:\n"
          f"    curl -X POST -H 'Content-Type: application/json' -d '{{\"approved\": true}}' "
          f"{found['url']}\n")
        tick = get_job(found["tick"])
        w(f"- cron tick: schedule {CRON_NAME!r} ({CRON_EXPR!r}: {schedule.describe()}) was "
          f"fired by the worker's scheduler at {tick.run_at:%H:%M:%S} UTC; its job "
          f"{tick.type} {tick.status} with {tick.result}; the schedule is paused again\n")
        self.cache_summary(tag)
        admin = settings.SHOP_BASE_URL + reverse("admin:index")
        w(f"- admin: {admin} (dashboard: {settings.SHOP_BASE_URL}"
          f"{reverse('admin:django_edgejobs_dashboard')}), user {ADMIN_USER!r} password "
          f"{ADMIN_PASSWORD!r}\n"
          "    open it with: make admin   (creates that superuser if missing, then runs "
          "runserver)\n")

    def cache_summary(self, tag):
        cache = caches[CACHE]
        w = self.stdout.write
        cache.set("demo:last-run", tag, ttl=3600,
                  metadata={"by": "make demo", "at": timezone.now().isoformat(timespec="seconds")})
        runs = cache.increment("demo:runs")
        w(f"- cache: caches[{CACHE!r}] ({type(cache).__name__}, the table "
          "django_edgejobs_cacheentry)\n"
          f"    set('demo:last-run', {tag!r}, ttl=3600, metadata=...) then "
          f"get -> {cache.get('demo:last-run')!r}, "
          f"get_metadata -> {cache.get_metadata('demo:last-run')}\n"
          f"    increment('demo:runs') -> {runs} (demo runs on this database so far)\n"
          f"    list(prefix='demo:') (demo:ticks counts the cron runs):\n")
        for entry in cache.list(prefix="demo:"):
            ttl = "no expiry" if entry["ttl"] is None else f"ttl {entry['ttl']}s"
            w(f"      {entry['key']:15} {ttl:12} metadata {entry['metadata']}\n")
        w(f"    in the admin: {settings.SHOP_BASE_URL}"
          f"{reverse('admin:django_edgejobs_cache')}?cache={CACHE}&prefix=demo:\n")
