"""The Django admin of django-edgejobs: jobs and their events, batches, wait tokens, cron
schedules, workers, the edge cache page and the dashboard (``admin:django_edgejobs_dashboard``).

The admin reads; every state change goes through the services users call (STYLE.md, 10).
Importing this package registers the model admins with ``django.contrib.admin.site``.
"""

from .batches import BatchAdmin
from .cache import EdgeCacheAdmin
from .jobs import JobAdmin, JobEventAdmin
from .schedules import CronScheduleAdmin
from .tokens import WaitTokenAdmin
from .workers import WorkerAdmin

__all__ = ["BatchAdmin", "CronScheduleAdmin", "EdgeCacheAdmin", "JobAdmin", "JobEventAdmin",
           "WaitTokenAdmin", "WorkerAdmin"]
