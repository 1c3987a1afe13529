"""The pure input checks of ``services.validation``: no database, and every message names the
problem (which option, which key of the payload, which value)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from django_edgejobs import EdgeJobsError, InvalidPayload, PermanentError, UnknownJobType
from django_edgejobs.services import validation as v

NOW = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)


# -- the exception tree -------------------------------------------------------------------


@pytest.mark.parametrize("cls", [UnknownJobType, InvalidPayload])
def test_input_errors_are_value_errors_and_edgejobs_errors(cls: type[Exception]) -> None:
    assert issubclass(cls, ValueError)
    assert issubclass(cls, EdgeJobsError)


def test_permanent_error_is_not_a_value_error() -> None:
    assert issubclass(PermanentError, EdgeJobsError)
    assert not issubclass(PermanentError, ValueError)


@pytest.mark.parametrize(
    ("cls", "text"),
    [
        (EdgeJobsError, "A django-edgejobs operation failed."),
        (UnknownJobType, "No handler is registered for this job type."),
        (InvalidPayload, "The payload cannot be stored as JSON."),
    ],
)
def test_the_docstring_is_the_default_message(cls: type[Exception], text: str) -> None:
    assert str(cls()) == text
    assert str(cls("custom")) == "custom"


# -- queue, tags, idempotency key ---------------------------------------------------------


def test_validate_queue_accepts_a_name() -> None:
    assert v.validate_queue("emails", where="w") == "emails"


@pytest.mark.parametrize("queue", ["", "   ", None, 3, ["q"]])
def test_validate_queue_rejects_non_names(queue: object) -> None:
    with pytest.raises(ValueError, match=r"^w: queue must be a non-empty string, got "):
        v.validate_queue(queue, where="w")


def test_validate_queue_rejects_long_names() -> None:
    v.validate_queue("q" * v.MAX_QUEUE_LENGTH, where="w")
    with pytest.raises(ValueError, match=r"^w: queue name is longer than 100 characters$"):
        v.validate_queue("q" * (v.MAX_QUEUE_LENGTH + 1), where="w")


def test_validate_tags_none_is_no_tags() -> None:
    assert v.validate_tags(None, where="w") == []


def test_validate_tags_keeps_order_and_drops_duplicates() -> None:
    assert v.validate_tags(["b", "a", "b", "c", "a"], where="w") == ["b", "a", "c"]
    assert v.validate_tags(("x", "y"), where="w") == ["x", "y"]
    assert sorted(v.validate_tags({"x", "y"}, where="w")) == ["x", "y"]
    assert v.validate_tags(frozenset({"z"}), where="w") == ["z"]


def test_validate_tags_keeps_quotes_and_unicode_as_they_are() -> None:
    tags = ["it's", 'say "hi"', "café", "日本", "a,b", "{x}", "%_"]
    assert v.validate_tags(tags, where="w") == tags


@pytest.mark.parametrize(("tags", "kind"), [("welcome", "str"), (b"x", "bytes"), (7, "int"),
                                            ({"a": 1}, "dict")])
def test_validate_tags_rejects_a_non_list(tags: object, kind: str) -> None:
    with pytest.raises(ValueError, match=rf"^w: tags must be a list of strings, got {kind}$"):
        v.validate_tags(tags, where="w")


@pytest.mark.parametrize(("tag", "shown"), [(1, r"1 \(int\)"), (None, r"None \(NoneType\)"),
                                            (b"a", r"b'a' \(bytes\)")])
def test_validate_tags_rejects_non_string_tags(tag: object, shown: str) -> None:
    with pytest.raises(ValueError, match=rf"^w: tags must be strings, got {shown}$"):
        v.validate_tags(["ok", tag], where="w")


def test_validate_tags_rejects_empty_and_long_tags() -> None:
    with pytest.raises(ValueError, match=r"^w: a tag must have 1 to 200 characters: ''$"):
        v.validate_tags([""], where="w")
    v.validate_tags(["t" * v.MAX_TAG_LENGTH], where="w")
    with pytest.raises(ValueError, match=r"a tag must have 1 to 200 characters"):
        v.validate_tags(["t" * (v.MAX_TAG_LENGTH + 1)], where="w")


def test_validate_tags_rejects_nul_characters() -> None:
    # PostgreSQL cannot store U+0000 in jsonb: the write would fail after validation passed.
    with pytest.raises(ValueError, match=r"^w: a tag cannot contain a NUL character: 'a\\x00b'$"):
        v.validate_tags(["a\x00b"], where="w")


def test_validate_queue_rejects_nul_characters() -> None:
    with pytest.raises(ValueError, match=r"^w: queue cannot contain a NUL character"):
        v.validate_queue("q\x00", where="w")


def test_validate_idempotency_key() -> None:
    assert v.validate_idempotency_key(None, where="w") is None
    assert v.validate_idempotency_key("welcome-123", where="w") == "welcome-123"
    assert v.validate_idempotency_key("k" * v.MAX_KEY_LENGTH, where="w") == "k" * 255
    with pytest.raises(ValueError, match=r"^w: idempotency_key must be a non-empty string, "
                                         r"got ''$"):
        v.validate_idempotency_key("", where="w")
    with pytest.raises(ValueError, match=r"idempotency_key must be a non-empty string, got 5$"):
        v.validate_idempotency_key(5, where="w")
    with pytest.raises(ValueError, match=r"^w: idempotency_key is longer than 255 characters$"):
        v.validate_idempotency_key("k" * 256, where="w")
    with pytest.raises(ValueError, match=r"^w: idempotency_key cannot contain a NUL character"):
        v.validate_idempotency_key("k\x00", where="w")


# -- options ------------------------------------------------------------------------------


def test_validate_options_none_means_default() -> None:
    opts = {"queue": None, "priority": None, "max_attempts": None, "retry_delay": None,
            "retry_backoff": None, "retry_delay_max": None, "timeout": None}
    assert v.validate_options(opts, where="w") == opts


def test_validate_options_normalises_numbers() -> None:
    out = v.validate_options(
        {"queue": "q", "priority": -5, "max_attempts": 2, "retry_delay": 3,
         "retry_backoff": False, "retry_delay_max": timedelta(minutes=2), "timeout": 0.5},
        where="w",
    )
    assert out == {"queue": "q", "priority": -5, "max_attempts": 2, "retry_delay": 3.0,
                   "retry_backoff": False, "retry_delay_max": 120.0, "timeout": 0.5}
    assert type(out["retry_delay"]) is float


def test_validate_options_accepts_the_edges() -> None:
    out = v.validate_options({"priority": 2**31 - 1, "retry_delay": 0, "max_attempts": 1},
                             where="w")
    assert out == {"priority": 2**31 - 1, "retry_delay": 0.0, "max_attempts": 1}
    assert v.validate_options({"priority": -(2**31)}, where="w") == {"priority": -(2**31)}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"priority": "high"}, r"^w: priority must be an integer, got 'high'$"),
        ({"priority": 1.5}, r"^w: priority must be an integer, got 1.5$"),
        ({"priority": True}, r"^w: priority must be an integer, got True$"),
        ({"priority": 2**31}, r"^w: priority must fit in 32 bits, got 2147483648$"),
        ({"priority": -(2**31) - 1}, r"^w: priority must fit in 32 bits"),
        ({"max_attempts": 0}, r"^w: max_attempts must be >= 1, got 0$"),
        ({"max_attempts": 2.0}, r"^w: max_attempts must be an integer, got 2.0$"),
        ({"retry_delay": -1}, r"^w: retry_delay must be >= 0, got -1$"),
        ({"retry_delay": "60"}, r"^w: retry_delay must be a number of seconds, got '60'$"),
        ({"retry_delay": math.nan}, r"^w: retry_delay must be a number of seconds, got nan$"),
        ({"retry_delay_max": math.inf}, r"^w: retry_delay_max must be a number of seconds"),
        ({"retry_delay_max": False}, r"^w: retry_delay_max must be a number of seconds"),
        ({"retry_backoff": "yes"}, r"^w: retry_backoff must be True, False, 'fixed', "
                                   r"'linear' or 'exponential', got 'yes'$"),
        ({"retry_backoff": 1}, r"^w: retry_backoff must be True, False, 'fixed', 'linear' or "
                               r"'exponential', got 1$"),
        ({"timeout": 0}, r"^w: timeout must be > 0, got 0$"),
        ({"timeout": -3}, r"^w: timeout must be > 0, got -3$"),
        ({"timeout": timedelta(0)}, r"^w: timeout must be > 0, got 0.0$"),
        ({"queue": ""}, r"^w: queue must be a non-empty string, got ''$"),
    ],
)
def test_validate_options_names_the_bad_option(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        v.validate_options(options, where="w")


def test_validate_options_does_not_change_its_input() -> None:
    given = {"retry_delay": timedelta(seconds=5)}
    v.validate_options(given, where="w")
    assert given == {"retry_delay": timedelta(seconds=5)}


# -- attempts -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("max_attempts", "max_retries", "expected"),
    [(None, None, None), (1, None, 1), (5, None, 5), (None, 0, 1), (None, 4, 5)],
)
def test_resolve_attempts(max_attempts: int | None, max_retries: int | None,
                          expected: int | None) -> None:
    assert v.resolve_attempts(max_attempts, max_retries, where="w") == expected


@pytest.mark.parametrize(
    ("max_attempts", "max_retries", "message"),
    [
        (3, 2, r"^w: pass max_attempts or max_retries, not both$"),
        (0, None, r"^w: max_attempts must be >= 1, got 0$"),
        (-1, None, r"^w: max_attempts must be >= 1, got -1$"),
        (None, -1, r"^w: max_retries must be >= 0, got -1$"),
        ("3", None, r"^w: max_attempts must be an integer, got '3'$"),
        (None, 1.0, r"^w: max_retries must be an integer, got 1.0$"),
        (True, None, r"^w: max_attempts must be an integer, got True$"),
    ],
)
def test_resolve_attempts_rejects(max_attempts: object, max_retries: object,
                                  message: str) -> None:
    with pytest.raises(ValueError, match=message):
        v.resolve_attempts(max_attempts, max_retries, where="w")


# -- run time -----------------------------------------------------------------------------


def test_resolve_run_at_defaults_to_now() -> None:
    assert v.resolve_run_at(None, None, NOW, where="w") == NOW


@pytest.mark.parametrize(
    ("delay", "expected"),
    [
        (0, NOW),
        (60, NOW + timedelta(seconds=60)),
        (1.5, NOW + timedelta(seconds=1.5)),
        (timedelta(hours=2), NOW + timedelta(hours=2)),
    ],
)
def test_resolve_run_at_from_delay(delay: object, expected: datetime) -> None:
    assert v.resolve_run_at(delay, None, NOW, where="w") == expected


def test_resolve_run_at_keeps_an_aware_datetime() -> None:
    other_zone = datetime(2030, 5, 6, 7, 8, 9, tzinfo=timezone(timedelta(hours=-5)))
    assert v.resolve_run_at(None, other_zone, NOW, where="w") == other_zone
    past = NOW - timedelta(days=3)
    assert v.resolve_run_at(None, past, NOW, where="w") == past


@pytest.mark.parametrize(
    ("delay", "run_at", "message"),
    [
        (5, NOW, r"^w: pass delay or run_at, not both$"),
        (0, NOW, r"^w: pass delay or run_at, not both$"),
        (-1, None, r"^w: delay must be >= 0, got -1$"),
        (timedelta(seconds=-1), None, r"^w: delay must be >= 0, got -1.0$"),
        ("60", None, r"^w: delay must be a number of seconds, got '60'$"),
        (math.inf, None, r"^w: delay must be a number of seconds, got inf$"),
        (None, datetime(2030, 1, 1, 9, 0), r"^w: run_at must be timezone-aware, got naive "
                                           r"2030-01-01T09:00:00 "),
        (None, "2030-01-01T09:00:00Z", r"^w: run_at must be a datetime, got "
                                       r"'2030-01-01T09:00:00Z'$"),
        (None, 1893456000, r"^w: run_at must be a datetime, got 1893456000$"),
    ],
)
def test_resolve_run_at_rejects(delay: object, run_at: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        v.resolve_run_at(delay, run_at, NOW, where="w")


@pytest.mark.parametrize("delay", [1e300, 10**30])
def test_resolve_run_at_rejects_a_delay_past_the_calendar(delay: float) -> None:
    # Not an OverflowError from deep inside datetime: a ValueError that names the option.
    with pytest.raises(ValueError, match=r"^w: delay of .* seconds is too large"):
        v.resolve_run_at(delay, None, NOW, where="w")


# -- payload ------------------------------------------------------------------------------


def test_encode_payload_returns_compact_json() -> None:
    text = v.encode_payload({"to": "a@example.com", "n": [1, 2.5, None, True], "é": "日本"},
                            max_bytes=1000, where="w")
    assert text == '{"to":"a@example.com","n":[1,2.5,null,true],"é":"日本"}'


def test_encode_payload_turns_tuples_into_lists() -> None:
    assert v.encode_payload({"t": (1, (2, 3))}, max_bytes=100, where="w") == '{"t":[1,[2,3]]}'


@pytest.mark.parametrize("payload", [None, 0, "text", [], {}])
def test_encode_payload_accepts_any_json_value(payload: object) -> None:
    assert isinstance(v.encode_payload(payload, max_bytes=100, where="w"), str)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"items": [1, {2}]}, r"^w: payload\['items'\]\[1\] is a set, which is not "
                              r"JSON-serialisable$"),
        ({"user": {"joined": datetime(2030, 1, 1, tzinfo=UTC)}},
         r"^w: payload\['user'\]\['joined'\] is a datetime, which is not JSON-serialisable$"),
        ({"amount": Decimal("1.10")}, r"^w: payload\['amount'\] is a Decimal"),
        ({"raw": b"x"}, r"^w: payload\['raw'\] is a bytes"),
        ({"ratio": math.nan}, r"^w: payload\['ratio'\] is nan, which JSON cannot hold$"),
        ({"deep": [[math.inf]]}, r"^w: payload\['deep'\]\[0\]\[0\] is inf"),
        ({1: "one"}, r"^w: payload has a key 1 of type int; JSON object keys must be strings$"),
        ({"a": {None: 1}}, r"^w: payload\['a'\] has a key None of type NoneType"),
        (object(), r"^w: payload is a object, which is not JSON-serialisable$"),
    ],
)
def test_encode_payload_names_the_offending_key(payload: object, message: str) -> None:
    with pytest.raises(InvalidPayload, match=message):
        v.encode_payload(payload, max_bytes=10_000, where="w")


def test_encode_payload_limit_counts_utf8_bytes_and_allows_the_exact_size() -> None:
    payload = {"s": "é" * 10}  # {"s":"..."} is 8 ASCII bytes + 20 bytes of é
    assert len(v.encode_payload(payload, max_bytes=28, where="w").encode()) == 28
    with pytest.raises(InvalidPayload, match=r"^w: payload is 28 bytes as JSON, over "
                                             r"MAX_PAYLOAD_BYTES \(27\)$"):
        v.encode_payload(payload, max_bytes=27, where="w")


def test_encode_payload_size_message_uses_thousands_separators() -> None:
    with pytest.raises(InvalidPayload, match=r"payload is 2,010 bytes as JSON, over "
                                             r"MAX_PAYLOAD_BYTES \(1,000\)"):
        v.encode_payload({"s": "x" * 2002}, max_bytes=1000, where="w")


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"note": "a\x00b"}, r"^w: payload\['note'\] contains a NUL character"),
        ({"list": ["ok", "\x00"]}, r"^w: payload\['list'\]\[1\] contains a NUL character"),
        ({"k\x00": 1}, r"^w: payload has a key 'k\\x00' with a NUL character"),
        ("\x00", r"^w: payload contains a NUL character"),
    ],
)
def test_encode_payload_rejects_nul_characters(payload: object, message: str) -> None:
    # json.dumps writes U+0000 as the escape \u0000, which PostgreSQL's jsonb refuses.
    with pytest.raises(InvalidPayload, match=message):
        v.encode_payload(payload, max_bytes=10_000, where="w")


def test_encode_payload_accepts_an_escaped_backslash_u0000_text() -> None:
    # The six characters \u0000 are harmless text, not a NUL.
    assert v.encode_payload({"s": "\\u0000"}, max_bytes=100, where="w") == '{"s":"\\\\u0000"}'


def test_encode_payload_rejects_a_circular_payload() -> None:
    payload: dict = {"a": []}
    payload["a"].append(payload)
    with pytest.raises(InvalidPayload, match=r"^w: payload\['a'\]\[0\] refers to itself"):
        v.encode_payload(payload, max_bytes=10_000, where="w")


def test_encode_payload_rejects_a_too_deep_payload() -> None:
    payload: list = []
    for _ in range(5000):
        payload = [payload]
    with pytest.raises(InvalidPayload, match=r"^w: payload is nested deeper than"):
        v.encode_payload(payload, max_bytes=100_000, where="w")


def test_encode_payload_accepts_a_shared_but_not_circular_value() -> None:
    shared = {"x": 1}
    assert v.encode_payload({"a": shared, "b": [shared]}, max_bytes=100, where="w") == (
        '{"a":{"x":1},"b":[{"x":1}]}'
    )


def test_check_result_names_the_result() -> None:
    assert v.check_result({"sent": True}) == {"sent": True}
    assert v.check_result(None) is None
    with pytest.raises(InvalidPayload, match=r"^the handler's return value: result\['at'\] is "
                                             r"a datetime, which is not JSON-serialisable$"):
        v.check_result({"at": NOW})
