"""``manage.py edgejobs_worker``: the same as ``runworker`` (Django Channels owns that name)."""

from .runworker import Command as RunWorkerCommand


class Command(RunWorkerCommand):
    pass
