"""The typed settings object, the system checks on ``EDGEJOBS`` and the lazy package import."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from django.core.checks import Error, Tags, Warning, run_checks
from django.test import override_settings

import django_edgejobs
from django_edgejobs import conf
from django_edgejobs.checks import check_settings
from django_edgejobs.conf import EdgeJobsSettings, get_settings, unknown_keys

ROOT = Path(__file__).resolve().parents[2]

#: The functions of DESIGN's public contract that the core job queue provides.
CORE_API = ["job", "enqueue", "enqueue_many", "get_job", "list_jobs", "get_jobs_by_tags",
            "get_job_events", "cancel_job", "cancel_all_upcoming", "retry_job", "edit_job",
            "reclaim_stuck_jobs", "cleanup_old_jobs", "cleanup_old_job_events"]
EXCEPTIONS = ["EdgeJobsError", "UnknownJobType", "InvalidPayload", "PermanentError", "Retry"]


def edgejobs_problems() -> list:
    return [m for m in check_settings() if m.id and m.id.startswith("edgejobs.")]


# -- the settings object ------------------------------------------------------------------


@override_settings(EDGEJOBS={})
def test_empty_setting_gives_the_documented_defaults() -> None:
    s = get_settings()
    assert s == EdgeJobsSettings()
    assert (s.QUEUES, s.CONCURRENCY, s.POLL_INTERVAL, s.HEARTBEAT_INTERVAL, s.WORKER_TIMEOUT,
            s.MAX_PAYLOAD_BYTES, s.DEFAULT_MAX_ATTEMPTS, s.DEFAULT_RETRY_DELAY,
            s.DEFAULT_RETRY_BACKOFF, s.DEFAULT_RETRY_DELAY_MAX, s.KEEP_FINISHED_DAYS,
            s.KEEP_EVENTS_DAYS, s.CRON) == (
        ("default",), 4, 1.0, 5.0, 30.0, 1_000_000, 3, 60, True, 3600, 30, 30, {})


@override_settings(EDGEJOBS=None)
def test_none_setting_gives_the_defaults() -> None:
    assert get_settings() == EdgeJobsSettings()


def test_override_settings_resets_the_cached_object() -> None:
    with override_settings(EDGEJOBS={"QUEUES": ["a", "b"], "MAX_PAYLOAD_BYTES": 10}):
        inside = get_settings()
        assert inside.QUEUES == ("a", "b")
        assert inside.MAX_PAYLOAD_BYTES == 10
        with override_settings(EDGEJOBS={"CONCURRENCY": 9}):
            assert get_settings().CONCURRENCY == 9
            assert get_settings().QUEUES == ("default",)
        assert get_settings() == inside
    outside = get_settings()
    assert outside.MAX_PAYLOAD_BYTES == 1_000_000


def test_the_settings_object_is_cached_and_frozen() -> None:
    first = get_settings()
    assert get_settings() is first
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.CONCURRENCY = 1  # type: ignore[misc]


def test_other_setting_changes_keep_the_cache() -> None:
    first = get_settings()
    with override_settings(TIME_ZONE="Europe/Paris"):
        assert get_settings() is first


@override_settings(EDGEJOBS={"QUEUES": ("x",), "REDACT_KEYS": ["pin"], "CONCURENCY": 7})
def test_get_settings_normalises_sequences_and_ignores_unknown_keys() -> None:
    s = get_settings()
    assert s.QUEUES == ("x",)
    assert s.REDACT_KEYS == ("pin",)
    assert s.CONCURRENCY == 4  # the misspelt key is for the system check to report


def test_the_receiver_only_resets_edgejobs() -> None:
    get_settings()
    conf._reset(setting="TIME_ZONE")
    assert conf._cached is not None
    conf._reset(setting="EDGEJOBS")
    assert conf._cached is None


def test_unknown_keys_come_with_the_closest_known_key() -> None:
    raw = {"QUEUES": [], "CONCURENCY": 2, "POLL_INTERVALL": 1, "default_max_attempts": 3,
           "SOMETHING": 1}
    assert unknown_keys(raw) == [("CONCURENCY", "CONCURRENCY"),
                                 ("POLL_INTERVALL", "POLL_INTERVAL"),
                                 ("default_max_attempts", None), ("SOMETHING", None)]


# -- system checks ------------------------------------------------------------------------


@override_settings(EDGEJOBS={"QUEUES": ["default", "emails"], "CONCURRENCY": 8,
                             "POLL_INTERVAL": 0.5, "HEARTBEAT_INTERVAL": 2,
                             "WORKER_TIMEOUT": 10, "MAX_PAYLOAD_BYTES": 2048,
                             "DEFAULT_MAX_ATTEMPTS": 1, "CRON": {}})
def test_a_valid_setting_has_no_problems() -> None:
    assert edgejobs_problems() == []


@override_settings(EDGEJOBS={"CONCURENCY": 8, "DEFAULT_MAX_ATEMPTS": 2, "BANANA": 1})
def test_unknown_keys_are_errors_with_a_did_you_mean() -> None:
    problems = edgejobs_problems()
    assert [(type(p), p.id, p.msg, p.hint) for p in problems] == [
        (Error, "edgejobs.E002", "EDGEJOBS has an unknown key 'CONCURENCY'",
         "Did you mean 'CONCURRENCY'?"),
        (Error, "edgejobs.E002", "EDGEJOBS has an unknown key 'DEFAULT_MAX_ATEMPTS'",
         "Did you mean 'DEFAULT_MAX_ATTEMPTS'?"),
        (Error, "edgejobs.E002", "EDGEJOBS has an unknown key 'BANANA'",
         "See the settings reference."),
    ]


@override_settings(EDGEJOBS={"POLL_INTERVALL": 2})
def test_the_registered_check_runs_with_django_checks() -> None:
    found = [m for m in run_checks(tags=[Tags.compatibility]) if m.id == "edgejobs.E002"]
    assert [(m.msg, m.hint) for m in found] == [
        ("EDGEJOBS has an unknown key 'POLL_INTERVALL'", "Did you mean 'POLL_INTERVAL'?")]


@override_settings(EDGEJOBS=["QUEUES"])
def test_a_non_dict_setting_is_an_error() -> None:
    assert [(p.id, p.msg) for p in edgejobs_problems()] == [
        ("edgejobs.E001", "EDGEJOBS must be a dict")]


@override_settings(USE_TZ=False, EDGEJOBS={})
def test_use_tz_false_is_an_error() -> None:
    assert [(p.id, p.msg) for p in edgejobs_problems()] == [
        ("edgejobs.E003", "django-edgejobs needs USE_TZ = True (job times are timezone-aware)")]


@pytest.mark.parametrize("queues", ["default", ["default", ""], ["ok", 3]])
def test_queues_must_be_a_list_of_names(queues: object) -> None:
    with override_settings(EDGEJOBS={"QUEUES": queues}):
        assert [(p.id, p.msg) for p in edgejobs_problems()] == [
            ("edgejobs.E004", "EDGEJOBS['QUEUES'] must be a list of queue names")]


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("CONCURRENCY", 0, "EDGEJOBS['CONCURRENCY'] must be a positive integer, got 0"),
        ("CONCURRENCY", "4", "EDGEJOBS['CONCURRENCY'] must be a positive integer, got '4'"),
        ("CONCURRENCY", True, "EDGEJOBS['CONCURRENCY'] must be a positive integer, got True"),
        ("MAX_PAYLOAD_BYTES", 1.5,
         "EDGEJOBS['MAX_PAYLOAD_BYTES'] must be a positive integer, got 1.5"),
        ("DEFAULT_MAX_ATTEMPTS", -1,
         "EDGEJOBS['DEFAULT_MAX_ATTEMPTS'] must be a positive integer, got -1"),
        ("POLL_INTERVAL", 0,
         "EDGEJOBS['POLL_INTERVAL'] must be a positive number of seconds, got 0"),
        ("HEARTBEAT_INTERVAL", "5",
         "EDGEJOBS['HEARTBEAT_INTERVAL'] must be a positive number of seconds, got '5'"),
    ],
)
def test_numbers_must_be_positive(key: str, value: object, message: str) -> None:
    with override_settings(EDGEJOBS={key: value}):
        assert [(p.id, p.msg) for p in edgejobs_problems()] == [("edgejobs.E005", message)]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("QUEUES", []),
        ("DEFAULT_RETRY_DELAY", -5),
        ("DEFAULT_RETRY_DELAY", "60"),
        ("DEFAULT_RETRY_DELAY_MAX", -1),
        ("DEFAULT_RETRY_BACKOFF", "no"),
        ("KEEP_FINISHED_DAYS", -1),
        ("KEEP_EVENTS_DAYS", "30"),
        ("SQLITE_WATCH_INTERVAL", -0.1),
        ("SQLITE_WATCH_INTERVAL", True),
    ],
)
def test_every_documented_value_is_checked(key: str, value: object) -> None:
    with override_settings(EDGEJOBS={key: value}):
        assert [p.id for p in edgejobs_problems() if isinstance(p, Error)] != []


@pytest.mark.parametrize(("heartbeat", "timeout"), [(5, 10), (5.0, 6.0), (1, 2)])
def test_a_worker_timeout_too_close_to_the_heartbeat_is_a_warning(heartbeat: float,
                                                                  timeout: float) -> None:
    with override_settings(EDGEJOBS={"HEARTBEAT_INTERVAL": heartbeat,
                                     "WORKER_TIMEOUT": timeout}):
        problems = edgejobs_problems()
    assert [(type(p), p.id) for p in problems] == [(Warning, "edgejobs.W001")]


@override_settings(EDGEJOBS={"HEARTBEAT_INTERVAL": 5, "WORKER_TIMEOUT": 10.5})
def test_a_worker_timeout_over_twice_the_heartbeat_is_fine() -> None:
    assert edgejobs_problems() == []


# -- the package import -------------------------------------------------------------------


def run_python(code: str, *, cwd: Path = ROOT, extra_path: str = "",
               settings_module: str | None = None) -> subprocess.CompletedProcess:
    env = {k: val for k, val in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    paths = (extra_path, str(ROOT), str(ROOT / "testproject"))
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    if settings_module:
        env["DJANGO_SETTINGS_MODULE"] = settings_module
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)


def test_importing_the_package_imports_no_models_and_needs_no_settings() -> None:
    done = run_python("""
        import sys
        import django_edgejobs
        from django_edgejobs import EdgeJobsError, InvalidPayload, PermanentError, Retry
        from django_edgejobs import UnknownJobType, job
        from django.apps import apps
        from django.conf import settings
        assert not settings.configured
        assert not apps.ready
        print(" ".join(sorted(m for m in sys.modules if m.startswith("django_edgejobs"))))
    """)
    assert done.returncode == 0, done.stderr
    loaded = done.stdout.split()
    assert "django_edgejobs" in loaded
    assert [m for m in loaded if m.startswith(("django_edgejobs.models", "django_edgejobs.store",
                                               "django_edgejobs.services"))] == []


def test_the_package_can_be_imported_from_a_settings_module(tmp_path: Path) -> None:
    (tmp_path / "early_settings.py").write_text(textwrap.dedent("""
        import sys
        import django_edgejobs
        from django_edgejobs import EdgeJobsError

        MODELS_AT_SETTINGS_TIME = "django_edgejobs.models" in sys.modules
        SECRET_KEY = "x"
        USE_TZ = True
        INSTALLED_APPS = ["django.contrib.contenttypes", "django_edgejobs"]
        DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
        EDGEJOBS = {"QUEUES": ["default"]}
    """))
    done = run_python("""
        import django
        django.setup()
        from django.conf import settings
        import django_edgejobs
        from django_edgejobs.services.enqueue import enqueue
        assert settings.MODELS_AT_SETTINGS_TIME is False
        assert django_edgejobs.enqueue is enqueue
        print("ok")
    """, extra_path=str(tmp_path), settings_module="early_settings")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "ok\n"


@pytest.mark.parametrize("name", CORE_API)
def test_every_public_name_is_importable_from_the_package(name: str) -> None:
    value = getattr(django_edgejobs, name)
    assert callable(value)
    assert value.__module__.startswith("django_edgejobs.")
    assert getattr(django_edgejobs, name) is value


def test_exceptions_are_importable_from_the_package() -> None:
    from django_edgejobs import exceptions

    for name in EXCEPTIONS:
        assert getattr(django_edgejobs, name) is getattr(exceptions, name)


def test_dir_lists_the_public_api() -> None:
    assert set(CORE_API) | set(EXCEPTIONS) <= set(dir(django_edgejobs))
    assert set(django_edgejobs.__all__) == set(dir(django_edgejobs))


def test_an_unknown_attribute_raises_attribute_error() -> None:
    with pytest.raises(AttributeError, match=r"^module 'django_edgejobs' has no attribute "
                                             r"'enqueue_later'$"):
        django_edgejobs.enqueue_later  # noqa: B018 - the access is the test
