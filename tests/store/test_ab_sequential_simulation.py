"""Simulated A/B tests through the mSPRT that ends them: false positives under no difference, power.

The decision the monitor takes (ingest/ab_monitor.py -> conclude_ab_tests -> sequential_verdict)
reads sufficient statistics from the database and hands them to pure functions:
`_metric_verdict` / `_preference_verdict`, which get their p-values from the numpy core
`metric_comparison` / `preference_comparison` -> `msprt_p_values` at level `comparison_alpha`,
and `_decide`. The simulations run that core on thousands of tests at once (one array element a
test) and rebuild `_decide`'s rule with numpy; `_check_against_the_verdict` then replays sampled
runs through the real `_metric_verdict` / `_preference_verdict` (and so `_decide`) one by one:
the test must end at exactly the look where the simulation ended it, not one look earlier, and
not at all in runs the simulation never ended.

Every simulated test is looked at after each batch of BATCH new observations per variant (one
monitor interval), from the first look with MIN_SCORES per variant up to MAX_N per variant; a
run is a false positive if any look ends it. Fixed seeds: the numbers below are what the file
measures, not a range.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pytest

from store.ab_lifecycle import AbTestDetails
from store.ab_sequential import (
    ALPHA,
    MIN_SCORES,
    VariantScores,
    _metric_verdict,
    _preference_verdict,
    comparison_alpha,
    metric_comparison,
    preference_comparison,
)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Draw = Callable[[np.random.Generator, FloatArray, tuple[int, ...]], FloatArray]

A_A_RUNS = 4000
POWER_RUNS = 2000
BATCH = 10
MAX_N = 1000
# The Monte Carlo standard error of a false-positive rate estimated from A_A_RUNS runs if the
# true rate were exactly ALPHA: sqrt(0.05 * 0.95 / 4000) = 0.00345, so the bound is 0.0603.
A_A_SE = math.sqrt(ALPHA * (1 - ALPHA) / A_A_RUNS)
A_A_BOUND = ALPHA + 3 * A_A_SE


@dataclass
class Runs:
    """Simulated tests: per run, the per-variant count at the look that ended it (0: never),
    whether the challenger (the better variant, when there is one) won, and the statistics of
    every look, to replay through the real verdict."""

    ended_at: IntArray
    challenger_won: npt.NDArray[np.bool_]
    looks: list[tuple[int, FloatArray, FloatArray]]
    """Per look: n per variant, and (variant, run) arrays of means and (n - 1) variances (a
    preference test: n decided comparisons per challenger, and (challenger, run) wins)."""

    @property
    def rate(self) -> float:
        return float(np.mean(self.ended_at > 0))

    @property
    def standard_error(self) -> float:
        return math.sqrt(self.rate * (1 - self.rate) / len(self.ended_at))


def _normal(rng: np.random.Generator, means: FloatArray, shape: tuple[int, ...]) -> FloatArray:
    return rng.normal(loc=means[:, None, None], scale=1.0, size=shape)


def _exponential(rng: np.random.Generator, means: FloatArray, shape: tuple[int, ...]) -> FloatArray:
    """Skewed scores (standard deviation = mean): the variance estimate is noisiest here."""
    return rng.exponential(scale=means[:, None, None], size=shape)


def _bool(rng: np.random.Generator, rates: FloatArray, shape: tuple[int, ...]) -> FloatArray:
    return (rng.random(shape) < rates[:, None, None]).astype(np.float64)


def _ends(
    differences: list[FloatArray], p_values: list[FloatArray], variants: int
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """`_decide` on arrays (higher is better, every variant has MIN_SCORES): whether the test
    ends, and whether a challenger wins (one significantly better) rather than the control
    (every challenger significantly worse)."""
    alpha = comparison_alpha(variants)
    better = [(p < alpha) & (d > 0) for d, p in zip(differences, p_values, strict=True)]
    worse = [(p < alpha) & (d < 0) for d, p in zip(differences, p_values, strict=True)]
    challenger_won = np.logical_or.reduce(better)
    return challenger_won | np.logical_and.reduce(worse), challenger_won


def _simulate_metric(
    draw: Draw, means: list[float], *, runs: int, seed: int, batch: int = BATCH, max_n: int = MAX_N
) -> Runs:
    """`runs` metric tests whose variants' scores come from `draw` with these means (the first
    variant is the control), every variant getting `batch` more scores before each look."""
    rng = np.random.default_rng(seed)
    centres = np.asarray(means, dtype=np.float64)
    sums = np.zeros((len(means), runs))
    squares = np.zeros((len(means), runs))
    ended_at = np.zeros(runs, dtype=np.int64)
    challenger_won = np.zeros(runs, dtype=np.bool_)
    looks: list[tuple[int, FloatArray, FloatArray]] = []
    for n in range(batch, max_n + 1, batch):
        scores = draw(rng, centres, (len(means), runs, batch))
        sums += scores.sum(axis=2)
        squares += (scores * scores).sum(axis=2)
        mean = sums / n
        variance = np.maximum(0.0, squares - n * mean * mean) / max(1, n - 1)
        looks.append((n, mean, variance))
        if n < MIN_SCORES:
            continue
        compared = [
            metric_comparison(n, mean[0], variance[0], n, mean[j], variance[j])
            for j in range(1, len(means))
        ]
        ends, won = _ends([d for d, _ in compared], [p for _, p in compared], len(means))
        first = ends & (ended_at == 0)
        ended_at[first] = n
        challenger_won[first] = won[first]
    return Runs(ended_at, challenger_won, looks)


def _simulate_preference(
    win_rate: float, *, runs: int, seed: int, batch: int = BATCH, max_n: int = MAX_N
) -> Runs:
    """`runs` preference tests of a challenger against the control: `batch` more decided
    comparisons before each look, each won by the challenger with probability `win_rate`."""
    rng = np.random.default_rng(seed)
    wins = np.zeros(runs)
    ended_at = np.zeros(runs, dtype=np.int64)
    challenger_won = np.zeros(runs, dtype=np.bool_)
    looks: list[tuple[int, FloatArray, FloatArray]] = []
    for n in range(batch, max_n + 1, batch):
        wins += rng.binomial(batch, win_rate, size=runs)
        looks.append((n, wins[None, :].copy(), np.zeros((1, runs))))
        if n < MIN_SCORES:
            continue
        difference, p_value = preference_comparison(wins, n)
        ends, won = _ends([difference], [p_value], 2)
        first = ends & (ended_at == 0)
        ended_at[first] = n
        challenger_won[first] = won[first]
    return Runs(ended_at, challenger_won, looks)


def _details(variants: int, mode: str) -> AbTestDetails:
    return AbTestDetails(
        id=1, key="sim", project_id=1, project="p", mode=mode, status="active", metric="m",
        metric_id=1, auto_deploy=False, variants=[{"model": f"v{i}"} for i in range(variants)],
    )  # fmt: skip


def _real_winner(runs: Runs, look: int, run: int, mode: str) -> str | None:
    """The winner the monitor's own verdict declares from the statistics of that look."""
    n, first, second = runs.looks[look]
    if mode == "preference":
        wins = int(first[0, run])
        counts = {("v1", "v0"): wins, ("v0", "v1"): n - wins}
        return _preference_verdict(_details(2, mode), counts).winner
    scores = {
        f"v{i}": VariantScores(n=n, mean=float(first[i, run]), variance=float(second[i, run]))
        for i in range(first.shape[0])
    }
    return _metric_verdict(_details(first.shape[0], mode), scores, False).winner


def _check_against_the_verdict(runs: Runs, mode: str, *, sample: int = 40) -> None:
    """Replay sampled runs through `_metric_verdict` / `_preference_verdict`: an ended run ends
    at its look and not at the one before (with the same winner), a run never ended never does."""
    rng = np.random.default_rng(0)
    ended = np.flatnonzero(runs.ended_at)
    running = np.flatnonzero(runs.ended_at == 0)
    for run in rng.permutation(ended)[:sample]:
        look = int(runs.ended_at[run]) // (runs.looks[1][0] - runs.looks[0][0]) - 1
        winner = _real_winner(runs, look, int(run), mode)
        assert winner is not None and (winner != "v0") == runs.challenger_won[run], (run, look)
        if look > 0:
            assert _real_winner(runs, look - 1, int(run), mode) is None, (run, look)
    for run in rng.permutation(running)[:sample]:
        for look in (len(runs.looks) - 1, int(rng.integers(len(runs.looks)))):
            assert _real_winner(runs, look, int(run), mode) is None, (run, look)


A_A_CASES = {
    "numeric, normal scores": lambda: _simulate_metric(_normal, [0.0, 0.0], runs=A_A_RUNS, seed=1),
    "numeric, skewed scores": lambda: _simulate_metric(
        _exponential, [1.0, 1.0], runs=A_A_RUNS, seed=2
    ),
    "numeric, looked at after every score": lambda: _simulate_metric(
        _normal, [0.0, 0.0], runs=A_A_RUNS, seed=3, batch=1, max_n=500
    ),
    "numeric, three variants": lambda: _simulate_metric(
        _normal, [0.0, 0.0, 0.0], runs=A_A_RUNS, seed=4
    ),
    "bool, 50% success": lambda: _simulate_metric(_bool, [0.5, 0.5], runs=A_A_RUNS, seed=5),
    "bool, 10% success": lambda: _simulate_metric(_bool, [0.1, 0.1], runs=A_A_RUNS, seed=6),
    "preference, 50/50": lambda: _simulate_preference(0.5, runs=A_A_RUNS, seed=7),
}


@pytest.mark.parametrize("case", list(A_A_CASES))
def test_no_difference_ends_at_most_alpha_of_the_tests_however_often_checked(case: str) -> None:
    """4000 A/A tests per case, looked at every 10 observations per variant (every single one
    in "after every score") up to 1000 (500); a test that ever ends is a false positive.

    Assert: false-positive rate <= alpha + 3 standard errors = 0.05 + 3 * 0.00345 = 0.0603 (the
    standard error of the estimate if the true rate were exactly 5%, so a controlled test fails
    this with probability about 0.1%). Measured (seeds as below), rate +- its own standard error:
    numeric normal 0.0235 +- 0.0024, numeric skewed (exponential) 0.0225 +- 0.0023, numeric
    after every score 0.0240 +- 0.0024, numeric three variants (each challenger at 2.5%)
    0.0097 +- 0.0016, bool 50% 0.0245 +- 0.0024, bool 10% 0.0192 +- 0.0022, preference 0.0173
    +- 0.0021. Below 5% because the looks stop at a finite n (Ville's bound is for looking
    forever) and start at MIN_SCORES."""
    runs = A_A_CASES[case]()
    assert runs.rate <= A_A_BOUND, (
        f"{case}: false-positive rate {runs.rate:.4f} +- {runs.standard_error:.4f} > "
        f"{A_A_BOUND:.4f}"
    )
    mode = "preference" if case.startswith("preference") else "metric"
    _check_against_the_verdict(runs, mode)


POWER_CASES = {
    # (the simulation, up to its max_n per variant; the least power asserted)
    "numeric, 0.3 sd better": (
        lambda: _simulate_metric(_normal, [0.0, 0.3], runs=POWER_RUNS, seed=11, max_n=500),
        0.90,
    ),
    "bool, 50% -> 60% success": (
        lambda: _simulate_metric(_bool, [0.5, 0.6], runs=POWER_RUNS, seed=12, max_n=1000),
        0.85,
    ),
    "preference, 60/40": (
        lambda: _simulate_preference(0.6, runs=POWER_RUNS, seed=13, max_n=500),
        0.85,
    ),
}


@pytest.mark.parametrize("case", list(POWER_CASES))
def test_a_known_effect_ends_the_test_with_the_better_variant(case: str) -> None:
    """2000 A/B tests per case with a known effect, looked at every 10 observations per variant:
    the share that ends, by the largest n, with the challenger (the better variant) as winner.

    Measured (seeds as below), power +- its Monte Carlo standard error: numeric 0.3 sd by 500
    scores per variant 0.9645 +- 0.0041 (asserted >= 0.90; 0.78 by 300, median stop at 180);
    bool 50% -> 60% success (0.2 sd) by 1000 per variant 0.9315 +- 0.0056 (>= 0.85; median
    stop at 370); preference 60/40 by 500 decided comparisons 0.9295 +- 0.0057 (>= 0.85; 0.995
    by 800; median stop at 210). The worse variant won 1 of the 2000 bool runs, none of the
    others (asserted: at most 1% of the ended runs)."""
    simulate, least = POWER_CASES[case]
    runs = simulate()
    assert runs.rate >= least, f"{case}: power {runs.rate:.4f} +- {runs.standard_error:.4f}"
    wrong = int(np.count_nonzero(~runs.challenger_won[runs.ended_at > 0]))
    assert wrong <= 0.01 * np.count_nonzero(runs.ended_at), f"{case}: the worse won {wrong}"
    mode = "preference" if case.startswith("preference") else "metric"
    _check_against_the_verdict(runs, mode)
