"""Enqueue sample jobs and run a worker until they are all finished, then print them."""

import logging
import time

from django.core.management.base import BaseCommand
from shop.models import Order

from django_edgejobs import enqueue, enqueue_many, list_jobs
from django_edgejobs.runtime.worker import Worker


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
        self.stdout.write(f"enqueued 9 jobs tagged {tag}; running a worker until they finish\n")

        def all_finished():
            return not list_jobs(tags=[tag], status=["pending", "processing", "waiting"],
                                 limit=1)

        worker = Worker(poll_interval=0.2, stop_when=all_finished, shutdown_timeout=5)
        worker.run()
        self.stdout.write(f"\n{'type':18} {'status':10} {'attempts':9} result\n")
        for j in reversed(list_jobs(tags=[tag], limit=None)):
            shown = j.result if j.status == "completed" else j.last_error
            attempts = f"{j.attempts}/{j.max_attempts}"
            self.stdout.write(f"{j.type:18} {j.status:10} {attempts:9} {shown}\n")
