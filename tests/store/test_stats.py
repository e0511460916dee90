"""The statistics never raise and never answer inf or NaN: what cannot be computed is None."""

from __future__ import annotations

import math
import warnings

import pytest

from store.stats import (
    Interval,
    mean_interval,
    proportion_interval,
    two_proportion_p_value,
    welch_p_value,
)

INF, NAN = math.inf, math.nan


@pytest.mark.parametrize(
    ("n", "mean", "variance"),
    [(3, 1.0, INF), (3, 1.0, NAN), (3, INF, 1.0), (3, -1e308, 1e308 * 10), (3, 1.0, -1.0)],
)
def test_mean_interval_of_overflowed_statistics_is_unknown(
    n: int, mean: float, variance: float
) -> None:
    assert mean_interval(n, mean, variance) == Interval(None, None)


def test_mean_interval_of_huge_finite_statistics_is_finite() -> None:
    interval = mean_interval(3, 1e308, 1e300)
    assert interval.low is not None and interval.high is not None
    assert math.isfinite(interval.low) and math.isfinite(interval.high)


@pytest.mark.parametrize(
    ("mean1", "var1", "mean2", "var2"),
    [
        (1e308, 1e307, -1e308, 1e307),  # the difference overflows
        (0.0, INF, 1.0, 1.0),
        (NAN, 1.0, 1.0, 1.0),
        (1.0, 1e308, 2.0, 1e308),
        (1.0, 0.0, 1.0, 0.0),
    ],
)
def test_welch_p_value_of_extreme_statistics_is_none_or_a_probability(
    mean1: float, var1: float, mean2: float, var2: float
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warning from numpy either
        p = welch_p_value(30, mean1, var1, 30, mean2, var2)
    assert p is None or 0.0 <= p <= 1.0
    if not math.isfinite(mean1 - mean2) or not math.isfinite(var1):
        assert p is None


def test_proportion_statistics_refuse_counts_that_are_not_counts() -> None:
    assert proportion_interval(10, NAN) == Interval(None, None)
    assert proportion_interval(10, 1e308) == Interval(None, None)
    assert two_proportion_p_value(10, NAN, 10, 3) is None
    assert two_proportion_p_value(10, 3, 10, INF) is None
    assert two_proportion_p_value(10, 3, 10, 7) == pytest.approx(0.0736, abs=1e-4)


def test_intervals_match_scipy_without_importing_it() -> None:
    """The summaries' intervals use the standard library (scipy.stats took 1-2 s to import on
    a new process's first summary); they agree with scipy's quantiles."""
    from scipy import stats as sp

    from store.stats import Z_95, mean_interval, proportion_interval, t_95

    assert abs(Z_95 - float(sp.norm.ppf(0.975))) < 1e-12
    for df in [*range(1, 200), 500, 1_000, 10_000, 1_000_000]:
        assert t_95(df) == pytest.approx(float(sp.t.ppf(0.975, df)), abs=1e-7), df
    interval = mean_interval(12, 3.0, 4.0)
    half = float(sp.t.ppf(0.975, 11)) * (4.0 / 12) ** 0.5
    assert (interval.low, interval.high) == pytest.approx((3.0 - half, 3.0 + half), abs=1e-9)
    wilson = proportion_interval(40, 10)
    low, high = sp.binomtest(10, 40).proportion_ci(confidence_level=0.95, method="wilson")
    assert (wilson.low, wilson.high) == pytest.approx((low, high), abs=1e-9)
    with pytest.raises(ValueError):
        t_95(0)
