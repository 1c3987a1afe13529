"""Flow-control options: parsed and checked at registration and at enqueue, with messages that
name the problem; resolved onto the row per payload."""

from __future__ import annotations

import pytest

from django_edgejobs import RateLimit, enqueue, enqueue_many, job
from django_edgejobs.models import Job, Queue
from django_edgejobs.services.limits import parse_rate


@pytest.mark.parametrize(("text", "n", "period"), [
    ("100/m", 100, 60.0), ("5/s", 5, 1.0), ("1/h", 1, 3600.0), (" 7 / s ", 7, 1.0),
    ("2/10m", 2, 600.0), ("3/0.5s", 3, 0.5),
])
def test_rates_parse(text, n, period):
    assert parse_rate(text, where="x") == RateLimit(n, period)


@pytest.mark.parametrize("text", ["", "100", "0/s", "-1/s", "10/d", "ten/s", "5/0s", "1.5/s",
                                  5, True, "5/s/s"])
def test_a_bad_rate_is_named(text):
    with pytest.raises(ValueError, match=r"x: rate_limit must be 'N/s', 'N/m', 'N/h'"):
        parse_rate(text, where="x")


@pytest.mark.parametrize(("args", "message"), [
    ((0, 1), "RateLimit: n must be an integer >= 1, got 0"),
    ((1, 0), "RateLimit: period must be a number of seconds > 0, got 0"),
    ((1, float("nan")), "RateLimit: period must be a number of seconds > 0"),
])
def test_a_bad_rate_limit_object_is_named(args, message):
    with pytest.raises(ValueError, match=message):
        RateLimit(*args)


@pytest.mark.parametrize(("options", "message"), [
    ({"concurrency_limit": 0}, "concurrency_limit must be an integer >= 1, got 0"),
    ({"concurrency_limit": 1.5}, "concurrency_limit must be an integer >= 1, got 1.5"),
    ({"concurrency_key": "k"}, "concurrency_key needs a concurrency_limit"),
    ({"rate_key": "k"}, "rate_key needs a rate_limit"),
    ({"rate_limit": "fast"}, "rate_limit must be 'N/s'"),
    ({"concurrency_key": "a:{", "concurrency_limit": 1}, "concurrency_key template 'a:{' is "
                                                         "not valid"),
    ({"concurrency_key": 5, "concurrency_limit": 1}, "concurrency_key must be a non-empty "
                                                     "string template or a callable"),
])
def test_bad_options_at_registration_are_named(register, options, message):
    with pytest.raises(ValueError, match=r"@job\('t.bad'\): " + message.replace("(", r"\(")
                       .replace(")", r"\)").replace("{", r"\{")):
        job("t.bad", **options)(lambda payload, ctx: None)


@pytest.mark.django_db
@pytest.mark.parametrize(("payload", "options", "message"), [
    ({"b": 1}, {"concurrency_key": "acct:{account_id}", "concurrency_limit": 2},
     "concurrency_key template 'acct:{account_id}' names payload key 'account_id', which the "
     "payload lacks"),
    ([1], {"concurrency_key": "acct:{0}", "concurrency_limit": 2},
     "concurrency_key template 'acct:{0}' needs a payload that is a dict, got list"),
    ({}, {"concurrency_key": lambda p: "", "concurrency_limit": 2},
     "concurrency_key must resolve to a non-empty string, got ''"),
    ({}, {"rate_limit": "5/s", "rate_key": lambda p: 1 / 0},
     "rate_key callable raised ZeroDivisionError"),
    ({}, {"concurrency_limit": -1}, "concurrency_limit must be an integer >= 1, got -1"),
    ({"k": "x" * 300}, {"concurrency_key": "{k}", "concurrency_limit": 1},
     "is longer than 255 characters"),
    ({}, {"concurrency_key": lambda p: "a\x00b", "concurrency_limit": 1},
     "concurrency_key cannot contain a NUL character"),
    ({}, {"rate_limit": "1/s", "rate_key": lambda p: "a\ud800"},
     "rate_key contains a lone surrogate"),
])
def test_bad_options_at_enqueue_are_named_and_nothing_is_written(register, payload, options,
                                                                 message):
    register("t.x", lambda payload, ctx: None)
    with pytest.raises(ValueError) as exc:
        enqueue("t.x", payload, **options)
    assert message in str(exc.value) and "enqueue('t.x')" in str(exc.value)
    assert not Job.objects.exists() and not Queue.objects.exists()


@pytest.mark.django_db
def test_keys_resolve_per_payload_and_enqueue_overrides_the_type(register):
    @job("t.sync", concurrency_key="account:{account_id}", concurrency_limit=2,
         rate_limit="100/m")
    def sync(payload, ctx):
        return None

    a, b = enqueue_many([{"type": "t.sync", "payload": {"account_id": 7}},
                         {"type": "t.sync", "payload": {"account_id": 8}}])
    assert (a.concurrency_key, a.concurrency_limit) == ("account:7", 2)
    assert (b.concurrency_key, a.rate_key, a.rate_limit, a.rate_period) == (
        "account:8", "type:t.sync", 100, 60.0)
    c = enqueue("t.sync", {"account_id": 7}, concurrency_key="x", concurrency_limit=1,
                rate_limit=RateLimit(5, 1, key=lambda p: f"r{p['account_id']}"))
    row = Job.objects.get(id=c.id)
    assert (row.concurrency_key, row.concurrency_limit, row.rate_key, row.rate_limit,
            row.rate_period) == ("x", 1, "r7", 5, 1.0)
    assert Queue.objects.get(name="default").limited
    register("t.plain", lambda payload, ctx: None)
    plain = Job.objects.get(id=enqueue("t.plain").id)
    assert (plain.concurrency_key, plain.concurrency_limit, plain.rate_key,
            plain.rate_limit) == ("", None, "", None)
    # A limit without a key holds for the type.
    d = enqueue("t.plain", concurrency_limit=3)
    assert (d.concurrency_key, d.concurrency_limit) == ("type:t.plain", 3)
