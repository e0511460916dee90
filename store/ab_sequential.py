"""Ending A/B tests by themselves: the mixture sequential probability ratio test (mSPRT).

Why this test: the gateway looks at a running test again and again (every few seconds, and
whenever feedback arrives). Re-running a fixed-sample test (Welch, z, binomial) at every look and
stopping at the first p < 0.05 inflates false positives far beyond 5%. The mSPRT of Johari,
Pekelis and Walsh ("Always valid inference", 2017; the basis of Optimizely's stats engine) gives
*always-valid* p-values: by Ville's inequality the chance that 1/Lambda_n ever drops below alpha
under the null is at most alpha, however often and whenever we look, so stopping the first time
it does is a valid level-alpha test. It needs only sufficient statistics (counts, means,
variances), works for differences of means (scalar metrics), of proportions (bool metrics) and for
a win rate against 1/2 (preference tests), and needs no planned sample size.

Statistic, for an estimated difference `d` with variance `V` and a normal mixing distribution of
variance `tau^2` over the true difference:  Lambda = sqrt(V / (V + tau^2)) *
exp(d^2 tau^2 / (2 V (V + tau^2))). We set tau to half the outcome's standard deviation (medium
effects, Cohen's d = 0.5, get the most power). With k variants each is compared to the control
(the first variant) at alpha / (k - 1) (Bonferroni). A test is judged only once every variant has
MIN_SCORES scored completions (or MIN_SCORES decided comparisons), so variances are estimated.

A test ends with a winner when a challenger is significantly better than the control (the best
such one wins), or when every challenger is significantly worse (the control wins). It never ends
while a scored completion has a value outside +-METRIC_VALUE_LIMIT (only values stored before
they were range-checked can be): such statistics are "not enough information", not a verdict.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import Engine, case, func
from sqlalchemy import select as sa_select
from sqlalchemy.orm import aliased
from sqlmodel import Session, col

from store.ab_lifecycle import AbTestDetails, end_ab_test, list_ab_test_details
from store.feedback import METRIC_VALUE_LIMIT
from store.models import (
    AbTestMode,
    AbTestStatus,
    Comparison,
    Interaction,
    Metric,
    MetricValue,
    ScoringType,
)

ALPHA = 0.05
MIN_SCORES = 30
TAU_IN_SDS = 0.5

if TYPE_CHECKING:  # numpy loads on the first verdict: a gateway with no A/B test never needs it
    import numpy as np
    import numpy.typing as npt

    FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class VariantScores:
    """A variant's sufficient statistics: scored completions, mean and variance of the score,
    and how many completions have a value outside +-METRIC_VALUE_LIMIT (or not finite)."""

    n: int
    mean: float
    variance: float
    out_of_range: int = 0

    @property
    def usable(self) -> bool:
        """Whether the statistics may decide anything: no value out of range, all finite."""
        return self.out_of_range == 0 and math.isfinite(self.mean) and math.isfinite(self.variance)


@dataclass(frozen=True)
class VariantComparison:
    """One challenger against the control: the estimated difference and its always-valid p."""

    variant: str
    n: int
    difference: float
    p_value: float
    significant: bool
    better: bool | None


@dataclass(frozen=True)
class SequentialVerdict:
    """Where a test stands under the mSPRT; `winner` is set when the test should end."""

    key: str
    enough_scores: bool
    scores: dict[str, int]
    comparisons: list[VariantComparison] = field(default_factory=list)
    winner: str | None = None
    reason: str | None = None
    out_of_range: int = 0
    """Scored completions with a value outside +-METRIC_VALUE_LIMIT: while any, no decision."""

    @property
    def p_value(self) -> float | None:
        """The smallest always-valid p-value among the comparisons with the control."""
        return min((c.p_value for c in self.comparisons), default=None)


def msprt_p_values(
    difference: npt.ArrayLike, variance: npt.ArrayLike, tau2: npt.ArrayLike
) -> FloatArray:
    """Always-valid p-values (1 / mixture likelihood ratio, capped at 1), element by element.

    The statistical core every verdict goes through (`msprt_p_value` is this on one element), in
    numpy so that tests can simulate thousands of A/B tests through the very same code
    (tests/store/test_ab_sequential_simulation.py). An element is 1 (no evidence) when an input
    is not finite, the variance of the difference is 0 and so is the difference (0 when it is
    not), or the mixing variance tau2 is not positive."""
    import numpy as np

    d, v, t = np.broadcast_arrays(
        np.asarray(difference, dtype=np.float64),
        np.asarray(variance, dtype=np.float64),
        np.asarray(tau2, dtype=np.float64),
    )
    with np.errstate(all="ignore"):
        total = v + t
        # The same statistic as in the module docstring, in an order that neither overflows nor
        # divides by an underflowed product.
        evidence = (d * d / v) * (t / total) / 2
        log_ratio = 0.5 * (np.log(v) - np.log(total)) + evidence
        p = np.where(log_ratio < 700, np.exp(-log_ratio), 0.0)
    # The exceptions, the most general last (it wins): no evidence from a ratio that is not a
    # number or not above 1, from a mixture that overflowed or has no spread, or from inputs
    # that are not finite; a difference without variance is certain (unless it is 0).
    p = np.where(np.isnan(log_ratio) | ~(log_ratio > 0), 1.0, p)
    p = np.where(~np.isfinite(total) | ~(t > 0), 1.0, p)
    p = np.where(v <= 0, np.where(d == 0, 1.0, 0.0), p)
    p = np.where(np.isfinite(d) & np.isfinite(v) & np.isfinite(t), p, 1.0)
    return np.asarray(p, dtype=np.float64)


def msprt_p_value(*, difference: float, variance: float, tau2: float) -> float:
    """Always-valid p-value (1 / mixture likelihood ratio, capped at 1) of a difference; 1 (no
    evidence) when an input is not finite."""
    return float(msprt_p_values(difference, variance, tau2))


def comparison_alpha(variants: int) -> float:
    """The level of each challenger's comparison with the control (Bonferroni over challengers)."""
    return ALPHA / max(1, variants - 1)


def metric_comparison(
    control_n: npt.ArrayLike,
    control_mean: npt.ArrayLike,
    control_variance: npt.ArrayLike,
    challenger_n: npt.ArrayLike,
    challenger_mean: npt.ArrayLike,
    challenger_variance: npt.ArrayLike,
) -> tuple[FloatArray, FloatArray]:
    """A challenger's difference in mean score from the control and its always-valid p-value,
    element by element, from both variants' counts (at least 2 each), means and (n - 1)
    variances: the difference of means, its variance var_a / n_a + var_b / n_b, and a mixing
    variance of TAU_IN_SDS^2 times the pooled variance of one score."""
    import numpy as np

    a_n, a_mean, a_var, b_n, b_mean, b_var = (
        np.asarray(x, dtype=np.float64)
        for x in (
            control_n,
            control_mean,
            control_variance,
            challenger_n,
            challenger_mean,
            challenger_variance,
        )
    )
    with np.errstate(all="ignore"):
        pooled = ((a_n - 1) * a_var + (b_n - 1) * b_var) / (a_n + b_n - 2)
        difference = b_mean - a_mean
        variance = a_var / a_n + b_var / b_n
        tau2 = (TAU_IN_SDS**2) * pooled
    return difference, msprt_p_values(difference, variance, tau2)


def preference_comparison(
    wins: npt.ArrayLike, decided: npt.ArrayLike
) -> tuple[FloatArray, FloatArray]:
    """A challenger's win rate over the control minus 1/2 and its always-valid p-value, element
    by element, from its wins and its decided comparisons with the control (at least 1): under
    no difference the win rate has variance 1/4 / decided, the mixing variance is TAU_IN_SDS^2
    times 1/4."""
    import numpy as np

    w = np.asarray(wins, dtype=np.float64)
    n = np.asarray(decided, dtype=np.float64)
    with np.errstate(all="ignore"):
        difference = w / n - 0.5
        variance = 0.25 / n
    return difference, msprt_p_values(difference, variance, TAU_IN_SDS**2 * 0.25)


def metric_scores(engine: Engine, *, test_id: int, metric_id: int) -> dict[str, VariantScores]:
    """Per variant: how many completions were scored, and their scores' mean and variance
    (a completion scored several times counts once, with the mean of its values).

    Overflow-safe on both databases: only values within +-METRIC_VALUE_LIMIT are summed (a
    value stored before values were checked, say 1e308, is counted in `out_of_range` instead),
    and the variance is taken around the variant's mean (two passes), so no square exceeds
    (2 * METRIC_VALUE_LIMIT)^2 and no precision is lost to cancellation."""
    value = col(MetricValue.value)
    in_range = func.abs(value) <= METRIC_VALUE_LIMIT  # false for NaN and infinities too
    per_completion = (
        sa_select(
            col(Interaction.ab_variant).label("variant"),
            func.avg(case((in_range, value))).label("v"),
            func.sum(case((in_range, 0), else_=1)).label("bad"),
        )
        .join(MetricValue, col(MetricValue.completion_id) == col(Interaction.completion_id))
        .where(
            col(Interaction.ab_test_id) == test_id,
            col(MetricValue.metric_id) == metric_id,
            col(Interaction.ab_variant).is_not(None),
        )
        .group_by(col(Interaction.completion_id), col(Interaction.ab_variant))
        .cte("per_completion")
    )
    centres = (
        sa_select(per_completion.c.variant, func.avg(per_completion.c.v).label("centre"))
        .group_by(per_completion.c.variant)
        .cte("centres")
    )
    shifted = per_completion.c.v - centres.c.centre
    statement = (
        sa_select(
            per_completion.c.variant,
            func.count(),
            func.sum(per_completion.c.bad),
            centres.c.centre,
            func.avg(shifted),
            func.avg(shifted * shifted),
        )
        .join(centres, centres.c.variant == per_completion.c.variant)
        .group_by(per_completion.c.variant, centres.c.centre)
    )
    with Session(engine) as session:
        rows = session.execute(statement).all()
    return {
        str(variant): _variant_scores(int(n), int(bad or 0), centre, offset, square)
        for variant, n, bad, centre, offset, square in rows
    }


def _variant_scores(
    n: int, out_of_range: int, centre: float | None, offset: float | None, square: float | None
) -> VariantScores:
    if out_of_range or centre is None or offset is None or square is None:
        return VariantScores(n=n, mean=math.nan, variance=math.nan, out_of_range=out_of_range)
    centre, offset, square = float(centre), float(offset), float(square)
    variance = max(0.0, square - offset * offset) * (n / (n - 1) if n > 1 else 1.0)
    return VariantScores(n=n, mean=centre + offset, variance=variance)


def preference_counts(
    engine: Engine, *, test_id: int, metric_id: int
) -> dict[tuple[str, str], int]:
    """Decided comparisons between the test's completions: (preferred, other) -> count."""
    preferred = aliased(Interaction)
    other = aliased(Interaction)
    statement = (
        sa_select(col(preferred.ab_variant), col(other.ab_variant), func.count())
        .select_from(Comparison)
        .join(preferred, col(preferred.completion_id) == col(Comparison.preferred_completion_id))
        .join(other, col(other.completion_id) == col(Comparison.other_completion_id))
        .where(
            col(Comparison.metric_id) == metric_id,
            col(Comparison.tie).is_(None),
            col(preferred.ab_test_id) == test_id,
            col(other.ab_test_id) == test_id,
        )
        .group_by(col(preferred.ab_variant), col(other.ab_variant))
    )
    with Session(engine) as session:
        rows = session.execute(statement).all()
    return {(str(a), str(b)): int(n) for a, b, n in rows if a is not None and b is not None}


def _metric_verdict(
    test: AbTestDetails, scores: dict[str, VariantScores], lower_is_better: bool
) -> SequentialVerdict:
    names = [str(v["model"]) for v in test.variants]
    counts = {name: scores[name].n if name in scores else 0 for name in names}
    out_of_range = sum(scores[name].out_of_range for name in names if name in scores)
    usable = all(scores[name].usable for name in names if name in scores)
    enough = usable and all(count >= MIN_SCORES for count in counts.values())
    verdict = SequentialVerdict(
        key=test.key, enough_scores=enough, scores=counts, out_of_range=out_of_range
    )
    control = names[0]
    alpha = comparison_alpha(len(names))
    for name in names[1:]:
        if name not in scores or control not in scores:
            continue
        a, b = scores[control], scores[name]
        if a.n < 2 or b.n < 2 or not (a.usable and b.usable):
            continue
        differences, p_values = metric_comparison(a.n, a.mean, a.variance, b.n, b.mean, b.variance)
        difference, p_value = float(differences), float(p_values)
        significant = enough and p_value < alpha
        better = (
            ((difference < 0) if lower_is_better else (difference > 0)) if significant else None
        )
        verdict.comparisons.append(
            VariantComparison(name, b.n, difference, p_value, significant, better)
        )
    return _decide(verdict, control)


def _preference_verdict(
    test: AbTestDetails, counts: dict[tuple[str, str], int]
) -> SequentialVerdict:
    names = [str(v["model"]) for v in test.variants]
    control = names[0]
    decided = {
        name: counts.get((name, control), 0) + counts.get((control, name), 0) for name in names[1:]
    }
    enough = all(n >= MIN_SCORES for n in decided.values())
    scores = {control: sum(decided.values()), **decided}
    verdict = SequentialVerdict(key=test.key, enough_scores=enough, scores=scores)
    alpha = comparison_alpha(len(names))
    for name in names[1:]:
        n = decided[name]
        if n == 0:
            continue
        differences, p_values = preference_comparison(counts.get((name, control), 0), n)
        difference, p_value = float(differences), float(p_values)
        significant = enough and p_value < alpha
        better = (difference > 0) if significant else None
        verdict.comparisons.append(
            VariantComparison(name, n, difference, p_value, significant, better)
        )
    return _decide(verdict, control)


def _decide(verdict: SequentialVerdict, control: str) -> SequentialVerdict:
    if not verdict.enough_scores or not verdict.comparisons:
        return verdict
    better = [c for c in verdict.comparisons if c.better]
    challengers = len(verdict.scores) - 1
    if better:
        best = max(better, key=lambda c: abs(c.difference))
        reason = f"{best.variant} beat {control} (always-valid p = {best.p_value:.2g}, mSPRT)"
        return _with(verdict, best.variant, reason)
    worse = [c for c in verdict.comparisons if c.better is False]
    if len(worse) == challengers:
        p = max(c.p_value for c in worse)
        reason = f"{control} beat every challenger (always-valid p <= {p:.2g}, mSPRT)"
        return _with(verdict, control, reason)
    return verdict


def _with(verdict: SequentialVerdict, winner: str, reason: str) -> SequentialVerdict:
    return SequentialVerdict(
        key=verdict.key,
        enough_scores=verdict.enough_scores,
        scores=verdict.scores,
        comparisons=verdict.comparisons,
        winner=winner,
        reason=reason,
        out_of_range=verdict.out_of_range,
    )


def sequential_verdict(engine: Engine, *, test: AbTestDetails) -> SequentialVerdict:
    """Where a test stands: scores per variant, always-valid p-values, and a winner if decided."""
    names = [str(v["model"]) for v in test.variants]
    if test.metric_id is None or len(names) < 2:
        return SequentialVerdict(key=test.key, enough_scores=False, scores={})
    with Session(engine) as session:
        metric = session.get(Metric, test.metric_id)
    if metric is None:
        return SequentialVerdict(key=test.key, enough_scores=False, scores={})
    if test.mode == AbTestMode.PREFERENCE.value:
        counts = preference_counts(engine, test_id=test.id, metric_id=test.metric_id)
        return _preference_verdict(test, counts)
    scores = metric_scores(engine, test_id=test.id, metric_id=test.metric_id)
    lower = metric.scoring == ScoringType.LOWER_IS_BETTER.value
    return _metric_verdict(test, scores, lower)


def conclude_ab_tests(
    engine: Engine, *, project_ids: list[int] | None = None
) -> list[AbTestDetails]:
    """End every active test whose result is significant; returns the tests this call ended."""
    ended: list[AbTestDetails] = []
    active = list_ab_test_details(engine, project_ids=project_ids, status=AbTestStatus.ACTIVE.value)
    for test in active:
        verdict = sequential_verdict(engine, test=test)
        if verdict.winner is None or verdict.reason is None:
            continue
        if end_ab_test(engine, test_id=test.id, winner=verdict.winner, reason=verdict.reason):
            ended.append(test)
    return ended
