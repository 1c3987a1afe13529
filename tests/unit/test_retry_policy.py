"""The retry policy (pure): ``retry_delay * 2 ** (attempt - 1)`` times a jitter factor in
[0.5, 1.0], capped at ``retry_delay_max``; a fixed ``retry_delay`` without backoff."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from django_edgejobs import Retry
from django_edgejobs.exceptions import ControlFlow, EdgeJobsError
from django_edgejobs.retry import retry_delay


def constant(value: float) -> Callable[[], float]:
    return lambda: value


@pytest.mark.parametrize(
    ("attempt", "expected"),
    [(1, 10.0), (2, 20.0), (3, 40.0), (4, 80.0), (5, 160.0), (10, 5120.0)],
)
def test_backoff_doubles_per_attempt_with_the_largest_jitter(attempt: int,
                                                             expected: float) -> None:
    # rand() == 1.0 is the top of the range: factor 1.0.
    got = retry_delay(attempt, delay=10, backoff=True, delay_max=1e9, rand=constant(1.0))
    assert got == expected


@pytest.mark.parametrize(("attempt", "expected"), [(1, 5.0), (2, 10.0), (3, 20.0), (6, 160.0)])
def test_backoff_with_the_smallest_jitter_halves_the_delay(attempt: int,
                                                           expected: float) -> None:
    got = retry_delay(attempt, delay=10, backoff=True, delay_max=1e9, rand=constant(0.0))
    assert got == expected


@pytest.mark.parametrize(("rand", "factor"), [(0.0, 0.5), (0.25, 0.625), (0.5, 0.75),
                                              (0.999, 0.9995)])
def test_jitter_factor_is_linear_in_rand(rand: float, factor: float) -> None:
    got = retry_delay(3, delay=60, backoff=True, delay_max=1e9, rand=constant(rand))
    assert got == pytest.approx(60 * 4 * factor)


def test_the_cap_applies_after_jitter() -> None:
    # 60 * 2**5 = 1920, times 0.5..1.0 = 960..1920; the cap is 1000.
    assert retry_delay(6, delay=60, backoff=True, delay_max=1000, rand=constant(0.0)) == 960.0
    assert retry_delay(6, delay=60, backoff=True, delay_max=1000, rand=constant(1.0)) == 1000.0
    assert retry_delay(50, delay=60, backoff=True, delay_max=3600, rand=constant(0.0)) == 3600.0


def test_huge_attempt_numbers_stay_capped_and_finite() -> None:
    got = retry_delay(10_000, delay=60, backoff=True, delay_max=3600, rand=constant(0.3))
    assert got == 3600.0


def test_attempt_zero_or_negative_is_treated_as_the_first() -> None:
    for attempt in (0, -3):
        assert retry_delay(attempt, delay=8, backoff=True, delay_max=100,
                           rand=constant(1.0)) == 8.0


@pytest.mark.parametrize("attempt", [1, 2, 3, 7, 100])
def test_without_backoff_the_delay_is_fixed_and_not_jittered(attempt: int) -> None:
    calls: list[int] = []

    def rand() -> float:
        calls.append(1)
        return 0.0

    assert retry_delay(attempt, delay=30, backoff=False, delay_max=3600, rand=rand) == 30.0
    assert calls == []


def test_zero_delay_means_retry_at_once() -> None:
    assert retry_delay(4, delay=0, backoff=True, delay_max=3600, rand=constant(0.7)) == 0.0
    assert retry_delay(4, delay=0, backoff=False, delay_max=3600) == 0.0


def test_result_is_a_float() -> None:
    got = retry_delay(2, delay=3, backoff=True, delay_max=100, rand=constant(1.0))
    assert type(got) is float
    assert type(retry_delay(2, delay=3, backoff=False, delay_max=100)) is float


def test_default_rand_stays_in_the_jitter_range() -> None:
    random.seed(1234)
    seen = {retry_delay(2, delay=100, backoff=True, delay_max=1e9) for _ in range(500)}
    assert min(seen) >= 100.0
    assert max(seen) <= 200.0
    assert len(seen) > 400  # really random, not a constant factor
    assert min(seen) < 110.0
    assert max(seen) > 190.0


# -- Retry(delay=...) ---------------------------------------------------------------------


def test_retry_is_a_control_flow_signal_not_a_failure() -> None:
    assert issubclass(Retry, ControlFlow)
    assert not issubclass(Retry, EdgeJobsError)


@pytest.mark.parametrize(("delay", "stored"), [(0, 0.0), (5, 5.0), (2.5, 2.5)])
def test_retry_keeps_its_delay(delay: float, stored: float) -> None:
    exc = Retry(delay=delay)
    assert exc.delay == stored
    assert type(exc.delay) is float
    assert str(exc) == f"retry requested in {stored:g}s"
    assert str(Retry(delay=delay, message="rate limited")) == "rate limited"


@pytest.mark.parametrize("delay", [-1, "5", None, True])
def test_retry_rejects_a_bad_delay(delay: object) -> None:
    with pytest.raises(ValueError, match=r"^Retry\(delay=\.\.\.\) must be a number of seconds "
                                         r">= 0, got "):
        Retry(delay=delay)  # type: ignore[arg-type]


@pytest.mark.parametrize("delay", [float("nan"), float("inf")])
def test_retry_rejects_a_non_finite_delay(delay: float) -> None:
    with pytest.raises(ValueError, match=r"^Retry\(delay=\.\.\.\) must be a number of seconds "
                                         r">= 0, got "):
        Retry(delay=delay)
