from .cache_entry import CacheEntry
from .event import JobEvent
from .job import Job, JobQuerySet, JobStatus
from .latency import FinishedMinute, LatencyMinute
from .limits import LimitKey, RateStart
from .queue import Dashboard, Queue
from .schedule import CronOutcome, CronSchedule, CronTick
from .token import WaitToken
from .worker import Worker
from .workflow import Batch, JobDependency

__all__ = [
    "Batch",
    "CacheEntry",
    "CronOutcome",
    "CronSchedule",
    "CronTick",
    "Dashboard",
    "FinishedMinute",
    "Job",
    "JobDependency",
    "JobEvent",
    "JobQuerySet",
    "JobStatus",
    "LatencyMinute",
    "LimitKey",
    "Queue",
    "RateStart",
    "WaitToken",
    "Worker",
]
