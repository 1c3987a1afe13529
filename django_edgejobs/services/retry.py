"""The retry policy: pure functions, no database."""

from __future__ import annotations

import random
from collections.abc import Callable


def retry_delay(
    attempt: int,
    *,
    delay: float,
    backoff: bool,
    delay_max: float,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait before the attempt after ``attempt`` (1-based) failed.

    With backoff: ``delay * 2 ** (attempt - 1)`` times a jitter factor in [0.5, 1.0], capped at
    ``delay_max``. Without: ``delay`` exactly.
    """
    if not backoff:
        return float(delay)
    exponent = min(max(attempt - 1, 0), 62)
    jitter = 0.5 + 0.5 * rand()
    return float(min(delay * (2**exponent) * jitter, delay_max))
