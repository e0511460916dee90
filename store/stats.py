"""The statistics behind summaries and A/B reports: intervals and tests, from sufficient stats.

Everything takes counts, means and variances (what one SQL aggregate returns), so DuckDB does the
scanning and only a few numbers per group reach Python. No function raises or returns inf/NaN
for extreme inputs (a variance that overflowed, a value stored before values were range-checked):
an interval or p-value that cannot be computed is None, i.e. "not enough information".
The intervals of summaries (mean_interval, proportion_interval) need only the standard
library: the dashboard's first page and a notebook's first summary used to wait 1-2 s for
scipy.stats to import. The A/B tests' p-values import scipy on first use.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

CONFIDENCE = 0.95
ALPHA = 1 - CONFIDENCE
#: The normal quantile of a two-sided 95% interval.
Z_95 = NormalDist().inv_cdf(1 - ALPHA / 2)
#: Student's t quantile of a two-sided 95% interval for 1..30 degrees of freedom (scipy's
#: `t.ppf(0.975, df)`, rounded to 12 digits); beyond, the expansion in t_95.
_T_95 = (
    12.706204736175, 4.302652729749, 3.182446305284, 2.776445105198, 2.570581835636,
    2.446911851145, 2.364624251593, 2.306004135204, 2.262157162798, 2.228138851986,
    2.200985160092, 2.178812829667, 2.160368656463, 2.144786687918, 2.13144954556,
    2.119905299221, 2.109815577833, 2.100922040241, 2.093024054408, 2.085963447266,
    2.079613844728, 2.073873067904, 2.068657610419, 2.063898561628, 2.059538552753,
    2.055529438643, 2.05183051648, 2.048407141795, 2.045229642133, 2.042272456301,
)  # fmt: skip


def t_95(df: int) -> float:
    """Student's t quantile for a two-sided 95% interval with DF degrees of freedom: a table up
    to 30, then the Cornish-Fisher expansion around the normal quantile (Abramowitz and Stegun
    26.7.5; within 3e-8 of the exact value for every DF above 30)."""
    if df < 1:
        raise ValueError("degrees of freedom must be at least 1")
    if df <= len(_T_95):
        return _T_95[df - 1]
    z = Z_95
    return (
        z
        + (z**3 + z) / (4 * df)
        + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)
        + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * df**3)
        + (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / (92160 * df**4)
    )


@dataclass(frozen=True)
class Interval:
    low: float | None
    high: float | None


def _finite(*values: float | None) -> bool:
    return all(value is not None and math.isfinite(value) for value in values)


def mean_interval(n: int, mean: float | None, variance: float | None) -> Interval:
    """Student-t 95% interval of a mean (sample variance, n-1 degrees of freedom)."""
    if n < 2 or mean is None or variance is None or not _finite(mean, variance) or variance < 0:
        return Interval(None, None)
    half = t_95(n - 1) * math.sqrt(variance / n)
    low, high = mean - half, mean + half
    return Interval(low, high) if _finite(low, high) else Interval(None, None)


def proportion_interval(n: int, successes: float) -> Interval:
    """Wilson 95% interval of a proportion (well-behaved near 0 and 1, unlike Wald)."""
    if n == 0 or not _finite(successes) or not 0 <= successes <= n:
        return Interval(None, None)
    z = Z_95
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
