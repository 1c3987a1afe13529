from django.apps import AppConfig


class QaConfig(AppConfig):
    name = "qa"
    verbose_name = "QA ledger (acceptance tests)"
    default_auto_field = "django.db.models.BigAutoField"
