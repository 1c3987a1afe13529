"""Settings for Django's generic cache tests run against the edge cache backends."""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "testproject"))

from testproject.settings import database_from_url  # noqa: E402

SECRET_KEY = "edgejobs-external-suites"
USE_TZ = True  # django-edgejobs requires it (Django runs its DB cache tests both ways)
DATABASES = {"default": database_from_url(os.environ.get(
    "DATABASE_URL", f"sqlite:///{ROOT / '.cache' / 'external' / 'django-suite.sqlite3'}"))}
DATABASES["default"]["TEST"] = (
    {"NAME": os.environ.get("EDGEJOBS_TEST_DB", "test_edgejobs_external")}
    if DATABASES["default"]["ENGINE"].endswith("postgresql") else {})
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django_edgejobs",
    "cache",  # Django's tests/cache (its Poll model)
]
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
