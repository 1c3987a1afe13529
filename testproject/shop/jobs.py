"""Example handlers: what a shop's background work looks like with django-edgejobs."""

from django.core.mail import send_mail
from django.db.models import Count, Sum

from django_edgejobs import PermanentError, job

from .models import Order, WebhookDelivery


@job("shop.send_email", queue="emails", max_attempts=5, retry_delay=30, timeout=60)
def send_order_email(payload, ctx):
    """Send an order confirmation. SMTP hiccups raise and are retried with backoff."""
    if "@" not in payload.get("to", ""):
        raise PermanentError(f"not an email address: {payload.get('to')!r}")
    sent = send_mail(
        subject=payload.get("subject", "Your order"),
        message=payload.get("body", "Thank you for your order."),
        from_email="shop@example.com",
        recipient_list=[payload["to"]],
    )
    return {"sent": sent, "to": payload["to"]}


@job("shop.daily_report", queue="reports", timeout=300)
def daily_report(payload, ctx):
    """Summarise orders, reporting progress as it goes."""
    ctx.set_progress(10)
    summary = Order.objects.aggregate(orders=Count("id"), revenue_cents=Sum("total_cents"))
    ctx.set_progress(90)
    return {"kind": payload.get("kind", "daily"), "orders": summary["orders"],
            "revenue_cents": summary["revenue_cents"] or 0}


@job("shop.webhook", queue="webhooks", max_attempts=4, retry_delay=1, retry_delay_max=10)
def deliver_webhook(payload, ctx):
    """POST an event to a partner. A 5xx answer raises, so the delivery is retried with
    backoff; the demo's endpoint fails its first ``simulate_failures`` attempts."""
    status = 503 if ctx.attempt <= payload.get("simulate_failures", 0) else 200
    WebhookDelivery.objects.create(url=payload["url"], event=payload["event"],
                                   attempt=ctx.attempt, status_code=status)
    if status >= 500:
        raise ConnectionError(f"{payload['url']} answered {status}")
    return {"status": status, "attempt": ctx.attempt}


@job("shop.refund_approval", queue="default", max_attempts=3)
def refund_approval(payload, ctx):
    """Ask a person to approve a refund by email; refund when they click, give up after a day.

    The recipe of docs/howto/human-approval.md: create a token, email its signed link (once:
    inside a step), wait for the token; the job sleeps without a worker slot meanwhile."""
    from django.conf import settings

    token = ctx.create_token(timeout=payload.get("timeout", 86400), tags=["refund"])

    def ask():
        link = settings.SHOP_BASE_URL + token.callback_path()
        send_mail(
            subject=f"Approve refund of order {payload['order_id']}?",
            message=f"POST {{\"approved\": true}} to approve: {link}",
            from_email="shop@example.com",
            recipient_list=[payload["approver"]],
        )
        return {"asked": payload["approver"]}

    ctx.run("ask", ask)
    answer = ctx.wait_for_token(token.id)
    if not answer.ok:
        return {"refunded": False, "reason": answer.error}
    approved = bool((answer.output or {}).get("approved"))
    return {"refunded": approved, "reason": None if approved else "declined"}


@job("shop.follow_up", queue="emails", max_attempts=3, retry_delay=5)
def follow_up(payload, ctx):
    """Thank the customer now, ask for a review later: a durable wait between two steps.

    ``ctx.wait_for`` suspends the job (``waiting``: no worker slot, no attempt used); the
    handler then runs again from the top and the recorded ``thanks`` step is not repeated."""
    def email(subject):
        return send_mail(subject=subject, message="Thank you for shopping with us.",
                         from_email="shop@example.com", recipient_list=[payload["to"]])

    ctx.run("thanks", lambda: email("Thanks for your order"))
    ctx.wait_for(seconds=payload.get("wait_seconds", 3600))
    ctx.run("review", lambda: email("How was your order?"))
    return {"to": payload["to"], "waited_seconds": payload.get("wait_seconds", 3600)}


@job("shop.tick", queue="default", max_attempts=1, timeout=30)
def tick(payload, ctx):
    """What a cron schedule runs (``make demo`` adds one every 5 seconds): count the ticks in
    the edge cache (``payload["cache"]``, an alias of ``CACHES``)."""
    from django.core.cache import caches

    return {"ticks": caches[payload.get("cache", "edge_db")].increment("demo:ticks")}
