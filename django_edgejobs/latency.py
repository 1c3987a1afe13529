"""Latency histograms: fixed log-scale buckets (10 per decade, 1 ms to about 12 days), merged
by adding counts, read as percentiles. Django-free: the rollup service fills them, the
dashboard merges and reads them.

A percentile is interpolated inside the bucket that holds its rank (log-linear), so it is
within one bucket of the exact value: at most 26% off (a bucket's upper bound is 10^0.1 times
its lower), and usually much closer. Values under 1 ms share the first bucket."""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping
from typing import Any

#: Upper bounds of the buckets, in seconds: 10^(k/10) ms for k = 0..90.
BOUNDS = [10 ** (k / 10) / 1000 for k in range(91)]
#: One more bucket holds everything longer.
OVERFLOW = len(BOUNDS)

Histogram = dict[int, int]


def bucket(seconds: float) -> int:
    """The bucket of a duration (negative ones, clock noise, count as 0)."""
    return bisect.bisect_left(BOUNDS, max(seconds, 0.0))


def histogram(values: Iterable[float]) -> Histogram:
    counts: Histogram = {}
    for value in values:
        i = bucket(value)
        counts[i] = counts.get(i, 0) + 1
    return counts


def merge(histograms: Iterable[Mapping[Any, int]]) -> Histogram:
    """The sum of histograms (keys may be text, as stored in JSON)."""
    total: Histogram = {}
    for h in histograms:
        for key, count in h.items():
            total[int(key)] = total.get(int(key), 0) + int(count)
    return total


def to_json(h: Histogram) -> dict[str, int]:
    return {str(k): v for k, v in sorted(h.items()) if v}


def percentile(h: Mapping[int, int], p: float) -> float | None:
    """The ``p``-th percentile (0..100) of the histogram's values, interpolated in its bucket;
    None when empty."""
    n = sum(h.values())
    if n == 0:
        return None
    rank = max(1, math.ceil(p * n / 100))  # nearest rank, as admin.stats.percentile
    seen = 0
    for i in sorted(h):
        count = h[i]
        if seen + count >= rank:
            if i >= OVERFLOW:
                return BOUNDS[-1]
            high = BOUNDS[i]
            low = BOUNDS[i - 1] if i > 0 else high / 10 ** 0.1
            share = (rank - seen) / count
            return low * (high / low) ** share
        seen += count
    return None  # pragma: no cover - the ranks add up to n
