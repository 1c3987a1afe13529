"""Django settings of the django-tasks-db contender (its own Django, in the peers' venv).

``BENCH_DTDB_URL`` is a ``postgresql://`` URL or ``sqlite:///path``. SQLite gets the same
options as the test project gives edgejobs (WAL, IMMEDIATE transactions, 30 s busy timeout);
PostgreSQL keeps its connections (CONN_MAX_AGE=None).
"""

import os
from urllib.parse import urlsplit

SECRET_KEY = "peer-benchmark"
DEBUG = False
USE_TZ = True
INSTALLED_APPS = ["django_tasks_db"]
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

_url = urlsplit(os.environ["BENCH_DTDB_URL"])
if _url.scheme == "sqlite":
    DATABASES = {"default": {
        "ENGINE": "django.db.backends.sqlite3", "NAME": _url.path,
        "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 30,
                    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"}}}
else:
    DATABASES = {"default": {
        "ENGINE": "django.db.backends.postgresql", "NAME": _url.path.lstrip("/"),
        "USER": _url.username or "", "HOST": _url.hostname or "", "PORT": _url.port or "",
        # db_worker calls close_old_connections() around every task: with Django's default
        # CONN_MAX_AGE=0 that is a new connection per task (~43 jobs/s here). Persistent
        # connections are what a deployment would configure.
        "CONN_MAX_AGE": None}}
