"""The statistics behind summaries and A/B reports: intervals and tests, from sufficient stats.

Everything takes counts, means and variances (what one SQL aggregate returns), so DuckDB does the
scanning and only a few numbers per group reach Python. No function raises or returns inf/NaN
for extreme inputs (a variance that overflowed, a value stored before values were range-checked):
an interval or p-value that cannot be computed is None, i.e. "not enough information".
scipy is imported on first use: importing scipy.stats takes a second or more, and the gateway
imports this module at start-up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

CONFIDENCE = 0.95
ALPHA = 1 - CONFIDENCE


@dataclass(frozen=True)
class Interval:
    low: float | None
    high: float | None


def _finite(*values: float | None) -> bool:
    return all(value is not None and math.isfinite(value) for value in values)


def mean_interval(n: int, mean: float | None, variance: float | None) -> Interval:
    """Student-t 95% interval of a mean (sample variance, n-1 degrees of freedom)."""
    from scipy import stats as sp

    if n < 2 or mean is None or variance is None or not _finite(mean, variance) or variance < 0:
        return Interval(None, None)
    half = float(sp.t.ppf(1 - ALPHA / 2, n - 1)) * math.sqrt(variance / n)
    low, high = mean - half, mean + half
    return Interval(low, high) if _finite(low, high) else Interval(None, None)


def proportion_interval(n: int, successes: float) -> Interval:
    """Wilson 95% interval of a proportion (well-behaved near 0 and 1, unlike Wald)."""
    from scipy import stats as sp

    if n == 0 or not _finite(successes) or not 0 <= successes <= n:
        return Interval(None, None)
    z = float(sp.norm.ppf(1 - ALPHA / 2))
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return Interval(centre - half, centre + half)


def welch_p_value(
    n1: int, mean1: float, var1: float, n2: int, mean2: float, var2: float
) -> float | None:
    """Two-sided Welch's t-test p-value from summary statistics."""
    import numpy as np
    from scipy import stats as sp

    if n1 < 2 or n2 < 2 or not _finite(mean1, var1, mean2, var2, mean1 - mean2):
        return None
    if min(var1, var2) < 0:
        return None
    with np.errstate(all="ignore"):  # overflow gives inf or NaN, refused below
        result = sp.ttest_ind_from_stats(
            mean1, math.sqrt(var1), n1, mean2, math.sqrt(var2), n2, equal_var=False
        )
    p = float(result.pvalue)
    return p if math.isfinite(p) else None


def two_proportion_p_value(n1: int, x1: float, n2: int, x2: float) -> float | None:
    """Two-sided pooled two-proportion z-test p-value."""
    from scipy import stats as sp

    if n1 == 0 or n2 == 0 or not (0 <= x1 <= n1 and 0 <= x2 <= n2):  # also refuses NaN
        return None
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 1.0
    z = (x1 / n1 - x2 / n2) / se
    return float(2 * sp.norm.sf(abs(z)))


def binomial_p_value(wins: int, losses: int) -> float | None:
    """Two-sided exact binomial test of wins vs losses against 50% (ties excluded)."""
    from scipy import stats as sp

    if wins + losses == 0:
        return None
    return float(sp.binomtest(wins, wins + losses, 0.5).pvalue)
