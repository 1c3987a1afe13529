"""Latency histograms (``django_edgejobs.latency``): buckets, merging, percentiles within a
bucket of the exact figure."""

from __future__ import annotations

import random

import pytest

from django_edgejobs import latency
from django_edgejobs.admin.stats import percentile as exact


def test_buckets_are_ten_per_decade_from_a_millisecond():
    assert latency.bucket(0) == latency.bucket(-1) == latency.bucket(0.0009) == 0
    assert latency.bucket(0.001) == 0 and latency.bucket(0.00101) == 1
    assert latency.bucket(0.01) == 10 and latency.bucket(1.0) == 30
    assert latency.bucket(10 ** 9) == latency.OVERFLOW


def test_merge_adds_counts_and_reads_json_keys():
    a = latency.histogram([0.5, 0.5, 2.0])
    stored = latency.to_json(latency.histogram([2.0, 30.0]))
    assert all(isinstance(k, str) for k in stored)
    merged = latency.merge([a, stored])
    assert sum(merged.values()) == 5 and merged[latency.bucket(2.0)] == 2


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("p", [50, 95, 99])
def test_a_percentile_is_within_one_bucket_of_the_exact_one(seed, p):
    rng = random.Random(seed)
    values = [rng.lognormvariate(0, 2) for _ in range(rng.randint(1, 3000))]
    got = latency.percentile(latency.histogram(values), p)
    want = exact(values, p)
    assert got is not None and want is not None
    assert want / 10 ** 0.1 <= got <= want * 10 ** 0.1, (got, want)


def test_an_empty_histogram_has_no_percentile():
    assert latency.percentile({}, 50) is None
