"""verify's 95 % interval: exact coverage over the hypergeometric distribution, for every
truth, so the margin verify prints is never narrower than it claims."""

from __future__ import annotations

from math import comb

import pytest

from cachectl.verify import Estimate


@pytest.mark.parametrize(("population", "sample"), [(400, 60), (1000, 100), (250, 200)])
def test_interval_covers_every_truth_at_least_95_percent(population: int, sample: int) -> None:
    intervals = [Estimate.of(k, sample, population) for k in range(sample + 1)]
    for bad in range(0, population + 1, max(1, population // 80)):
        truth = bad / population
        coverage = sum(comb(bad, k) * comb(population - bad, sample - k)
                       for k, est in enumerate(intervals) if est.low <= truth <= est.high
                       ) / comb(population, sample)
        assert coverage >= 0.95, (bad, coverage)


def test_every_key_checked_leaves_no_margin() -> None:
    est = Estimate.of(7, 400, 400)
    assert (est.ratio, est.low, est.high, est.margin) == (7 / 400, 7 / 400, 7 / 400, 0.0)


def test_nothing_found_still_has_an_upper_bound() -> None:
    est = Estimate.of(0, 200, 10_000)
    assert est.low == 0.0 and 0.01 < est.high < 0.02
