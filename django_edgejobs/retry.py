"""The retry policy: pure functions, no database.

``retry_backoff`` is a mode: ``"fixed"`` (the same delay every time), ``"linear"`` or
``"exponential"``; ``True`` and ``False`` are kept as the names they always had for
``"exponential"`` and ``"fixed"``. ``retry_multiplier`` shapes the growth (None: the mode's
default, which makes ``True`` exactly the doubling it always was).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

#: The modes of ``retry_backoff``, as strings (True is "exponential", False is "fixed").
BACKOFF_MODES = ("fixed", "linear", "exponential")
#: ``retry_multiplier`` when none is given: exponential doubles, linear adds one delay.
DEFAULT_MULTIPLIER = {"linear": 1.0, "exponential": 2.0}


def backoff_mode(backoff: bool | str) -> str:
    """The mode of a ``retry_backoff`` value (validated before: a bool or a mode name)."""
    if backoff is True:
        return "exponential"
    if backoff is False:
        return "fixed"
    return str(backoff)


def growth(mode: str, attempt: int, multiplier: float | None = None) -> float:
    """How many times ``retry_delay`` the wait after failed ``attempt`` is, before jitter and
    cap: 1, ``1 + multiplier * (attempt - 1)`` or ``multiplier ** (attempt - 1)``."""
    steps = max(attempt - 1, 0)
    if mode == "fixed":
        return 1.0
    factor = DEFAULT_MULTIPLIER[mode] if multiplier is None else float(multiplier)
    if mode == "linear":
        return 1.0 + factor * steps
    try:
        return float(factor ** steps)
    except OverflowError:  # beyond any cap
        return math.inf


def retry_delay(
    attempt: int,
    *,
    delay: float,
    backoff: bool | str,
    delay_max: float,
    multiplier: float | None = None,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait before the attempt after ``attempt`` (1-based) failed.

    ``"exponential"`` (or True): ``delay * multiplier ** (attempt - 1)`` (multiplier 2 by
    default); ``"linear"``: ``delay * (1 + multiplier * (attempt - 1))`` (multiplier 1 by
    default: ``delay * attempt``). Both are multiplied by a jitter factor in [0.5, 1.0], then
    capped at ``delay_max``. ``"fixed"`` (or False): ``delay`` exactly, no jitter, no cap.
    """
    mode = backoff_mode(backoff)
    if mode == "fixed":
        return float(delay)
    if delay == 0:
        return 0.0
    jitter = 0.5 + 0.5 * rand()
    return float(min(delay * growth(mode, attempt, multiplier) * jitter, delay_max))
