"""Settings for the example project and the test suite, read from the environment.

- ``DATABASE_URL``: ``sqlite:///path`` (default: ``db.sqlite3`` beside this project) or
  ``postgres://user:password@host:port/name``.
- ``LISTEN_DATABASE_URL``: when ``DATABASE_URL`` points at a connection pooler (PgBouncer), a
  URL of the same PostgreSQL database that bypasses it: the alias ``listen``, which the
  workers' LISTEN connection uses (``EDGEJOBS["LISTEN_DATABASE"]``).
- ``LEDGER_DATABASE_URL``: the alias ``ledger``, where the ``qa`` ledger is written (the fault
  suite's proxy rows reach the test database directly with it).
- ``REDIS_URL``: ``redis://127.0.0.1:6379/0`` (used by the cache examples and tests).
- ``EDGEJOBS_JSON``: a JSON object merged into ``EDGEJOBS`` (tests tune timeouts with it).
"""

import json
import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "edgejobs-testproject-not-secret")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["*"]
USE_TZ = True
TIME_ZONE = "UTC"


def database_from_url(url: str) -> dict:
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        name = unquote(parts.path[1:] if parts.path.startswith("//") else parts.path.lstrip("/"))
        if url.startswith("sqlite:////"):
            name = "/" + name.lstrip("/")
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": name or str(BASE_DIR / "db.sqlite3"),
            "OPTIONS": {
                # One writer at a time: take the write lock when a transaction starts, wait for
                # it instead of failing, and let readers run beside the writer (WAL).
                "transaction_mode": "IMMEDIATE",
                "timeout": 30,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
            # A file, not memory: worker processes and threads share it with the tests.
            "TEST": {"NAME": str(BASE_DIR / f".{os.environ.get('EDGEJOBS_TEST_DB', 'test-db')}"
                                             ".sqlite3")},
        }
    if parts.scheme in ("postgres", "postgresql", "pgsql"):
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parts.path.lstrip("/")) or "postgres",
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
            "TEST": {"NAME": os.environ.get("EDGEJOBS_TEST_DB", "test_edgejobs")},
        }
    raise ValueError(f"unsupported DATABASE_URL scheme {parts.scheme!r}")


DATABASES = {"default": database_from_url(
    os.environ.get("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"))}
if os.environ.get("LISTEN_DATABASE_URL"):
    # "default" is behind a pooler: no cursor may outlive its transaction. "listen" is the
    # same database reached without it (tests use "default"'s test database for both).
    DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True
    DATABASES["listen"] = {**database_from_url(os.environ["LISTEN_DATABASE_URL"]),
                           "TEST": {"MIRROR": "default"}}
if os.environ.get("LEDGER_DATABASE_URL"):
    # The fault suite's proxy rows: the qa ledger reaches the database directly (qa/routers.py).
    DATABASES["ledger"] = {**database_from_url(os.environ["LEDGER_DATABASE_URL"]),
                           "TEST": {"MIRROR": "default"}}
    DATABASE_ROUTERS = ["qa.routers.LedgerRouter"]

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
# Where links in the example app's emails point (the token callback of shop.refund_approval).
SHOP_BASE_URL = os.environ.get("SHOP_BASE_URL", "http://localhost:8000")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_edgejobs",
    "shop",
    "qa",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

ROOT_URLCONF = "testproject.urls"
TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "DIRS": [],
    "APP_DIRS": True,
    "OPTIONS": {"context_processors": [
        "django.template.context_processors.request",
        "django.contrib.auth.context_processors.auth",
        "django.contrib.messages.context_processors.messages",
    ]},
}]
STATIC_URL = "/static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
MAILERS = {"default": {"BACKEND": "django.core.mail.backends.locmem.EmailBackend"}}

EDGEJOBS = {
    "QUEUES": ["default", "emails", "reports", "webhooks"],
    "CONCURRENCY": 4,
}
if "listen" in DATABASES:
    EDGEJOBS["LISTEN_DATABASE"] = "listen"
EDGEJOBS.update(json.loads(os.environ.get("EDGEJOBS_JSON", "{}")))

# Django's own Task API on the same job store and workers (shop/tasks.py).
TASKS = {
    "default": {
        "BACKEND": "django_edgejobs.tasks.EdgeJobsBackend",
        "QUEUES": ["default", "emails"],
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {"django_edgejobs": {"handlers": ["console"],
                                    "level": os.environ.get("EDGEJOBS_LOG_LEVEL", "INFO")}},
}

# Caches. "default" needs no server (and no database access in tests); "edge" is the Redis edge
# cache at REDIS_URL (JSON values: the recommendation wherever Redis is shared) and "edge_db"
# its database twin (table django_edgejobs_cacheentry).
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "edge": {
        "BACKEND": "django_edgejobs.cache.RedisEdgeCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "testproject",
        "OPTIONS": {
            "SERIALIZER": "django_redis.serializers.json.JSONSerializer",
            "SOCKET_CONNECT_TIMEOUT": 2,
            "SOCKET_TIMEOUT": 2,
        },
    },
    "edge_db": {"BACKEND": "django_edgejobs.cache.DatabaseEdgeCache", "KEY_PREFIX": "testproject"},
}
