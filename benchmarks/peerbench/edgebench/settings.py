"""The test project's settings (DATABASE_URL picks the database) plus the benchmark's jobs.

DEBUG is off (Django's query log would grow), the worker serves the ``default`` queue, and
``EDGEJOBS_JSON`` (read by the test project's settings) adds the cron schedule of W4.
"""

from testproject.settings import *  # noqa: F403
from testproject.settings import EDGEJOBS, INSTALLED_APPS

DEBUG = False
INSTALLED_APPS = [*INSTALLED_APPS, "edgebench"]
EDGEJOBS = {**EDGEJOBS, "QUEUES": ["default"]}
