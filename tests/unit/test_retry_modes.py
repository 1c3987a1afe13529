"""Retry backoff modes (pure): ``"fixed"``, ``"linear"``, ``"exponential"`` and
``retry_multiplier``; True and False keep their meaning; how a job's mode and multiplier are
picked from its option levels; the checks of the new options and of a schedule's metadata."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from django_edgejobs.retry import backoff_mode, growth, retry_delay
from django_edgejobs.services import validation as v


def constant(value: float) -> Callable[[], float]:
    return lambda: value


@pytest.mark.parametrize(("attempt", "expected"), [(1, 10.0), (2, 20.0), (3, 30.0), (7, 70.0)])
def test_linear_adds_one_delay_per_attempt_by_default(attempt: int, expected: float) -> None:
    got = retry_delay(attempt, delay=10, backoff="linear", delay_max=1e9, rand=constant(1.0))
    assert got == expected


@pytest.mark.parametrize(("attempt", "expected"), [(1, 10.0), (2, 35.0), (3, 60.0), (5, 110.0)])
def test_linear_multiplier_scales_the_step(attempt: int, expected: float) -> None:
    # delay * (1 + 2.5 * (attempt - 1))
    got = retry_delay(attempt, delay=10, backoff="linear", multiplier=2.5, delay_max=1e9,
                      rand=constant(1.0))
    assert got == expected


def test_linear_is_jittered_and_capped_like_exponential() -> None:
    # The decision (docs/explanation/cron.md): every growing mode is jittered in [0.5, 1.0].
    assert retry_delay(3, delay=10, backoff="linear", delay_max=1e9, rand=constant(0.0)) == 15.0
    assert retry_delay(3, delay=10, backoff="linear", delay_max=1e9,
                       rand=constant(0.5)) == 22.5
    assert retry_delay(50, delay=10, backoff="linear", delay_max=100, rand=constant(0.0)) == 100


@pytest.mark.parametrize(("attempt", "expected"), [(1, 10.0), (2, 30.0), (3, 90.0), (4, 270.0)])
def test_exponential_multiplier(attempt: int, expected: float) -> None:
    got = retry_delay(attempt, delay=10, backoff="exponential", multiplier=3, delay_max=1e9,
                      rand=constant(1.0))
    assert got == expected


@pytest.mark.parametrize("attempt", [1, 2, 3, 6, 20])
def test_true_and_exponential_without_multiplier_are_the_old_doubling(attempt: int) -> None:
    for rand in (0.0, 0.37, 1.0):
        old = min(60 * 2 ** (attempt - 1) * (0.5 + 0.5 * rand), 3600)
        for backoff in (True, "exponential"):
            assert retry_delay(attempt, delay=60, backoff=backoff, delay_max=3600,
                               rand=constant(rand)) == old


@pytest.mark.parametrize("backoff", [False, "fixed"])
def test_false_and_fixed_are_exact_whatever_the_multiplier(backoff: bool | str) -> None:
    calls: list[int] = []

    def rand() -> float:
        calls.append(1)
        return 0.0

    for attempt in (1, 4, 100):
        assert retry_delay(attempt, delay=30, backoff=backoff, multiplier=9, delay_max=5,
                           rand=rand) == 30.0
    assert calls == []


def test_huge_growth_is_capped_not_an_overflow() -> None:
    assert retry_delay(5000, delay=1, backoff="exponential", multiplier=1e6, delay_max=3600,
                       rand=constant(0.2)) == 3600.0
    assert growth("exponential", 5000, 1e6) == float("inf")
    assert retry_delay(5000, delay=0, backoff="exponential", multiplier=1e6, delay_max=3600,
                       rand=constant(0.2)) == 0.0  # not nan


def test_a_multiplier_below_one_shrinks_the_delay() -> None:
    assert retry_delay(3, delay=100, backoff="exponential", multiplier=0.5, delay_max=1e9,
                       rand=constant(1.0)) == 25.0


def test_backoff_mode_names() -> None:
    assert [backoff_mode(b) for b in (True, False, "fixed", "linear", "exponential")] == [
        "exponential", "fixed", "fixed", "linear", "exponential"]


# -- validation -----------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["linear", "fixed", "exponential", True, False])
def test_retry_backoff_accepts_the_modes_and_bools_as_given(value: bool | str) -> None:
    assert v.validate_options({"retry_backoff": value}, where="w")["retry_backoff"] is value


@pytest.mark.parametrize("value", ["Linear", "exp", "", 1, 0, 2.0, ["linear"]])
def test_retry_backoff_refuses_anything_else_naming_the_allowed_values(value: object) -> None:
    with pytest.raises(ValueError, match=r"^w: retry_backoff must be True, False, 'fixed', "
                                         r"'linear' or 'exponential', got "):
        v.validate_options({"retry_backoff": value}, where="w")


@pytest.mark.parametrize("value", [0, -1, float("nan"), float("inf"), "2", True, 10**400])
def test_retry_multiplier_must_be_a_positive_number(value: object) -> None:
    with pytest.raises(ValueError, match=r"^w: retry_multiplier must be a number > 0, got "):
        v.validate_options({"retry_multiplier": value}, where="w")


def test_retry_multiplier_is_a_float() -> None:
    out = v.validate_options({"retry_multiplier": 3, "retry_backoff": "linear"}, where="w")
    assert out["retry_multiplier"] == 3.0 and type(out["retry_multiplier"]) is float


@pytest.mark.parametrize("backoff", [False, "fixed"])
def test_a_multiplier_with_a_fixed_delay_given_together_is_refused(backoff: bool | str) -> None:
    with pytest.raises(ValueError, match=r"^w: retry_multiplier has no effect with "
                                         r"retry_backoff=.* \(a fixed delay\)"):
        v.validate_options({"retry_backoff": backoff, "retry_multiplier": 2}, where="w")


@pytest.mark.parametrize(("levels", "default", "expected"), [
    # Nothing set: the settings' default, doubling.
    ([(None, None), (None, None)], True, ("exponential", None)),
    ([(None, None), (None, None)], False, ("fixed", None)),
    # The enqueue level's mode wins; its own multiplier, or the mode's default.
    ([("linear", 4.0), ("exponential", 3.0)], True, ("linear", 4.0)),
    ([("linear", None), ("exponential", 3.0)], True, ("linear", None)),
    ([(True, None), ("exponential", 3.0)], True, ("exponential", None)),
    # A multiplier alone applies to the mode of a less specific level.
    ([(None, 5.0), ("linear", 3.0)], True, ("linear", 5.0)),
    ([(None, None), ("linear", 3.0)], True, ("linear", 3.0)),
    ([(None, 5.0), (None, None)], True, ("exponential", 5.0)),
    # A fixed delay keeps no multiplier.
    ([(None, 5.0), (False, None)], True, ("fixed", None)),
])
def test_resolve_backoff_picks_mode_and_multiplier_by_level(levels, default, expected) -> None:
    mode, multiplier = expected
    assert v.resolve_backoff(levels, default) == {
        "retry_backoff": mode != "fixed", "retry_mode": mode, "retry_multiplier": multiplier}


# -- a schedule's metadata ------------------------------------------------------------------

def test_metadata_is_a_json_object_returned_as_json_gives_it_back() -> None:
    assert v.validate_metadata(None, where="w") == {}
    assert v.validate_metadata({"owner": "ops", "n": (1, 2)}, where="w") == {
        "owner": "ops", "n": [1, 2]}


@pytest.mark.parametrize(("value", "message"), [
    ([1], r"^w: metadata must be a dict \(a JSON object\), got list$"),
    ("x", r"^w: metadata must be a dict \(a JSON object\), got str$"),
    ({"at": object()}, r"^w: metadata\['at'\] is a object, which is not JSON-serialisable$"),
    ({1: "x"}, r"^w: metadata has a key 1 of type int; JSON object keys must be strings$"),
    ({"x": float("nan")}, r"^w: metadata\['x'\] is nan, which JSON cannot hold$"),
    ({"x": "a\x00b"}, r"^w: metadata\['x'\] contains a NUL character"),
    ({"x": "y" * v.MAX_METADATA_BYTES},
     r"^w: metadata is 16,392 bytes as JSON, over the limit of 16,384$"),
])
def test_bad_metadata_is_refused_naming_the_problem(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        v.validate_metadata(value, where="w")
