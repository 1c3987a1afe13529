from __future__ import annotations

from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules

from .registry import Registry


class EdgeJobsConfig(AppConfig):
    name = "django_edgejobs"
    label = "django_edgejobs"
    verbose_name = "Edge jobs"
    default_auto_field = "django.db.models.BigAutoField"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.registry = Registry()

    def ready(self) -> None:
        # Imported here, once the models are loaded (this module is imported before they
        # are): checks.py imports models, and both register checks or signal receivers.
        from . import checks  # noqa: F401 - registers the system checks
        from .tasks import TASK_TYPE_PREFIX, resolve_task_type

        # Jobs of django.tasks Tasks (EdgeJobsBackend) run the Task found by its module path.
        self.registry.add_resolver(TASK_TYPE_PREFIX, resolve_task_type)
        autodiscover_modules("jobs")
