from django.db import models


class Order(models.Model):
    customer_email = models.EmailField()
    total_cents = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"order {self.pk} ({self.customer_email})"


class WebhookDelivery(models.Model):
    url = models.URLField()
    event = models.CharField(max_length=100)
    attempt = models.PositiveIntegerField()
    status_code = models.PositiveIntegerField()
    delivered_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.event} -> {self.url} ({self.status_code})"
