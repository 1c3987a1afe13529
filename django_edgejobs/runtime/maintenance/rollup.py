"""The latency rollup: per-minute histograms of the completed jobs' wait and run times, which
the dashboard reads instead of the jobs (``services/rollup.py``)."""

from __future__ import annotations

import random

from ...services import rollup
from ...store import get_store
from ..service import Service

#: Seconds between passes: a minute is rolled within this long of closing (plus the grace).
ROLLUP_INTERVAL = 15.0


class LatencyRollup(Service):
    """Every ``ROLLUP_INTERVAL`` s: roll the minutes that closed, again those that closed
    lately, and those of the last day that have none (a bounded number per pass)."""

    name = "rollup"

    def __init__(self, interval: float = ROLLUP_INTERVAL):
        self._interval = interval
        # Not at a worker's start (its first jobs are waiting), and not every process at once.
        self.first_delay = interval * random.uniform(0.5, 1.5)

    @property
    def interval(self) -> float:
        return self._interval

    def run_once(self) -> int:
        return rollup.roll_due(get_store().db_now())
