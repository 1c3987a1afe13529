"""The handler registry and the ``@job`` decorator (no database)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any

import pytest
from django.apps import apps
from django.core.exceptions import ImproperlyConfigured

from django_edgejobs import UnknownJobType, job
from django_edgejobs.handlers import JobHandler
from django_edgejobs.registry import JobType, Registry, get_registry


def send_email(payload: dict, ctx: Any) -> dict:
    """Send one email."""
    return {"sent": payload.get("to")}


def send_sms(payload: dict, ctx: Any) -> None:
    return None


async def fetch(payload: dict, ctx: Any) -> int:
    return 42


# -- JobType and Registry -----------------------------------------------------------------


def test_job_type_defaults_are_the_per_job_options() -> None:
    jt = JobType(name="t.a", func=send_email, queue="emails", priority=3, max_attempts=5,
                 retry_delay=2.0, retry_backoff=False, retry_delay_max=9.0, timeout=7.0,
                 force_kill=True)
    assert jt.defaults() == {"queue": "emails", "priority": 3, "max_attempts": 5,
                             "retry_delay": 2.0, "retry_backoff": False,
                             "retry_multiplier": None, "retry_delay_max": 9.0, "timeout": 7.0}
    assert jt.origin == "tests.unit.test_registry.send_email"
    assert jt.is_async is False
    assert JobType(name="t.b", func=fetch).is_async is True


def test_job_type_without_options_leaves_them_to_settings() -> None:
    assert JobType(name="t.a", func=send_email).defaults() == {
        "queue": "default", "priority": 0, "max_attempts": None, "retry_delay": None,
        "retry_backoff": None, "retry_multiplier": None, "retry_delay_max": None,
        "timeout": None,
    }


def test_register_get_require_and_listing() -> None:
    reg = Registry()
    a, b = JobType(name="t.b", func=send_email), JobType(name="t.a", func=send_sms)
    reg.register(a)
    reg.register(b)
    assert reg.get("t.b") is a
    assert reg.require("t.a") is b
    assert reg.get("t.missing") is None
    assert reg.names() == ["t.a", "t.b"]
    assert "t.a" in reg
    assert "t.c" not in reg
    assert {jt.name for jt in reg} == {"t.a", "t.b"}
    reg.unregister("t.a")
    reg.unregister("t.never")  # no error
    assert reg.names() == ["t.b"]


def test_a_second_registration_with_another_function_raises() -> None:
    reg = Registry()
    reg.register(JobType(name="send", func=send_email))
    with pytest.raises(ImproperlyConfigured,
                       match=r"^job type 'send' is already registered by "
                             r"tests\.unit\.test_registry\.send_email; "
                             r"tests\.unit\.test_registry\.send_sms cannot register it again$"):
        reg.register(JobType(name="send", func=send_sms))
    assert reg.require("send").func is send_email


def test_registering_the_same_function_again_is_allowed() -> None:
    # A module imported twice (autoreload, an explicit re-import) registers the same origin.
    reg = Registry()
    reg.register(JobType(name="send", func=send_email, queue="a"))
    reg.register(JobType(name="send", func=send_email, queue="b"))
    assert reg.require("send").queue == "b"


def test_a_same_named_function_of_the_same_module_cannot_take_a_type() -> None:
    reg = Registry()

    def handler(payload: dict, ctx: Any) -> str:
        return "first"

    first = handler

    def handler(payload: dict, ctx: Any) -> str:
        return "second"

    reg.register(JobType(name="send", func=first))
    with pytest.raises(ImproperlyConfigured, match=r"already registered"):
        reg.register(JobType(name="send", func=handler))


def test_require_unknown_type_suggests_a_close_name() -> None:
    reg = Registry()
    reg.register(JobType(name="send-email", func=send_email))
    with pytest.raises(UnknownJobType,
                       match=r"^no handler is registered for job type 'send-emial'; did you mean "
                             r"'send-email'\? \(handlers are registered with @job in an "
                             r"installed app's jobs\.py\)$"):
        reg.require("send-emial")
    with pytest.raises(UnknownJobType,
                       match=r"^no handler is registered for job type 'zzz' \(handlers"):
        reg.require("zzz")


@pytest.mark.parametrize("name", ["", None, 3, b"send-email"])
def test_require_rejects_a_non_string_type(name: object) -> None:
    with pytest.raises(UnknownJobType, match=r"^job type must be a non-empty string, got "):
        Registry().require(name)


def test_temporary_registrations_are_undone() -> None:
    reg = Registry()
    keep = JobType(name="keep", func=send_email)
    reg.register(keep)
    with reg.temporary(JobType(name="tmp", func=send_sms), JobType(name="keep", func=send_sms)):
        assert reg.names() == ["keep", "tmp"]
        assert reg.require("keep").func is send_sms
    assert reg.names() == ["keep"]
    assert reg.require("keep") is keep


def test_the_registry_lives_on_the_app_config() -> None:
    assert get_registry() is apps.get_app_config("django_edgejobs").registry


# -- @job ---------------------------------------------------------------------------------


def test_job_registers_with_options_and_returns_a_callable_handler(register: Callable) -> None:
    handler = job("t.send", queue="emails", priority=4, max_attempts=5, retry_delay=30,
                  retry_backoff=False, retry_delay_max=120, timeout=60,
                  force_kill=True)(send_email)
    assert isinstance(handler, JobHandler)
    assert handler.type == "t.send"
    jt = get_registry().require("t.send")
    assert jt.func is send_email
    assert jt.defaults() == {"queue": "emails", "priority": 4, "max_attempts": 5,
                             "retry_delay": 30.0, "retry_backoff": False,
                             "retry_multiplier": None, "retry_delay_max": 120.0,
                             "timeout": 60.0}
    assert jt.force_kill is True
    # Still the plain function.
    assert handler({"to": "a@example.com"}, None) == {"sent": "a@example.com"}
    assert handler.__name__ == "send_email"
    assert handler.__doc__ == "Send one email."
    assert handler.__wrapped__ is send_email
    assert repr(handler) == "<JobHandler 't.send' -> tests.unit.test_registry.send_email>"


def test_job_with_defaults(register: Callable) -> None:
    job("t.plain")(send_sms)
    jt = get_registry().require("t.plain")
    assert jt.queue == "default"
    assert jt.priority == 0
    assert jt.max_attempts is None
    assert jt.force_kill is False


def test_job_twice_with_another_function_raises(register: Callable) -> None:
    job("t.once")(send_email)
    with pytest.raises(ImproperlyConfigured, match=r"^job type 't\.once' is already registered"):
        job("t.once")(send_sms)


def test_job_supports_async_handlers(register: Callable) -> None:
    handler = job("t.async")(fetch)
    assert get_registry().require("t.async").is_async is True
    assert asyncio.run(handler({}, None)) == 42


def test_a_decorated_async_handler_is_still_a_coroutine_function(register: Callable) -> None:
    assert inspect.iscoroutinefunction(job("t.async2")(fetch))


@pytest.mark.parametrize("name", ["", "   ", None, 5])
def test_job_needs_a_type_name(name: object) -> None:
    with pytest.raises(ImproperlyConfigured, match=r"^@job needs a non-empty string type, got "):
        job(name)  # type: ignore[arg-type]


def test_job_must_decorate_a_callable(register: Callable) -> None:
    with pytest.raises(ImproperlyConfigured, match=r"^@job\('t\.x'\) must decorate a function$"):
        job("t.x")("not a function")  # type: ignore[arg-type]
    assert "t.x" not in get_registry()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_attempts": 0}, r"^@job\('t\.bad'\): max_attempts must be >= 1, got 0$"),
        ({"queue": ""}, r"^@job\('t\.bad'\): queue must be a non-empty string, got ''$"),
        ({"priority": "high"}, r"^@job\('t\.bad'\): priority must be an integer, got 'high'$"),
        ({"retry_delay": -1}, r"^@job\('t\.bad'\): retry_delay must be >= 0, got -1$"),
        ({"retry_backoff": "no"}, r"^@job\('t\.bad'\): retry_backoff must be True, False, "
                                  r"'fixed', 'linear' or 'exponential', got 'no'$"),
        ({"timeout": 0}, r"^@job\('t\.bad'\): timeout must be > 0, got 0$"),
    ],
)
def test_job_rejects_bad_options_before_registering(register: Callable, options: dict,
                                                    message: str) -> None:
    with pytest.raises(ValueError, match=message):
        job("t.bad", **options)(send_email)
    assert "t.bad" not in get_registry()

