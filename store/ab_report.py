"""The A/B test report: per variant, an estimate with its 95% interval and a test against control.

Metric tests: each scored completion counts once (the mean of its values). Scalar metrics compare
means with Welch's t-test; bool metrics compare true-rates with a pooled two-proportion z-test.
Preference tests: comparisons between a variant's completion and the control's count as a win or
a loss (ties, 'good' or 'bad', are reported but excluded); the win rate is tested against 50%
with an exact binomial test. The control is the test's first variant.

Only values within +-METRIC_VALUE_LIMIT are aggregated, so no sum or variance overflows; a
variant with a value outside (stored before values were range-checked, e.g. 1e308) reports how
many of its completions have one in `out_of_range`, and no estimate, interval or p-value.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from store.errors import InvalidInputError, NotFoundError
from store.feedback import METRIC_VALUE_LIMIT
from store.stats import (
    ALPHA,
    Interval,
    binomial_p_value,
    mean_interval,
    proportion_interval,
    two_proportion_p_value,
    welch_p_value,
)

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class VariantResult:
    """One variant's line in the report."""

    variant: str
    is_control: bool
    n: int
    observations: int
    estimate: float | None
    ci_low: float | None
    ci_high: float | None
    difference: float | None = None
    p_value: float | None = None
    significant: bool = False
    better: bool | None = None
    wins: int | None = None
    losses: int | None = None
    ties: int | None = None
    out_of_range: int = 0


@dataclass(frozen=True)
class AbTestReport:
    """The whole report; `estimate` is a mean (scalar), a true-rate (bool) or a win rate
    against the control (preference)."""

    key: str
    project: str
    mode: str
    status: str
    metric: str | None
    metric_kind: str | None
    scoring: str | None
    control: str | None
    winner: str | None
    variants: list[VariantResult] = field(default_factory=list)

    def to_frame(self) -> pd.DataFrame:
        """One row per variant."""
        import pandas as pd  # on first use: the gateway imports this module, never pandas

        return pd.DataFrame([asdict(variant) for variant in self.variants])

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _variant_name(entry: Any) -> str | None:
    if isinstance(entry, str):
        return entry
    if isinstance(entry, dict):
        for field_name in ("name", "variant", "key", "model"):
            if entry.get(field_name):
                return str(entry[field_name])
    return None


def _find_test(cursor: Any, key: str, project_id: int | None, project: str | None) -> tuple:
    sql = (
        "SELECT t.id, p.key, t.mode, t.status, t.variants, t.winner, t.metric_id, m.key, m.kind, "
        "m.scoring FROM ab_tests t JOIN projects p ON p.id = t.project_id "
        "LEFT JOIN metrics m ON m.id = t.metric_id WHERE t.key = ?"
    )
    params: list[Any] = [key]
    if project_id is not None:
        sql += " AND t.project_id = ?"
        params.append(project_id)
    if project is not None:
        sql += " AND p.key = ?"
        params.append(project)
    rows = cursor.execute(sql, params).fetchall()
    if not rows:
        raise NotFoundError("A/B test", key)
    if len(rows) > 1:
        raise InvalidInputError(f"A/B test key {key} exists in several projects: name the project")
    return tuple(rows[0])


def build_ab_test_report(
    cursor: Any, key: str, *, project_id: int | None, project: str | None = None
) -> AbTestReport:
    """Compute the report from the analytics store (a cursor of store.analytics.lake)."""
    test_id, project_key, mode, status, variants_json, winner, metric_id, metric, kind, scoring = (
        _find_test(cursor, key, project_id, project)
    )
    declared = [_variant_name(v) for v in json.loads(variants_json or "[]")]
    counts = dict(
        cursor.execute(
            "SELECT ab_variant, count(*) FROM interactions WHERE ab_test_id = ? "
            "AND ab_variant IS NOT NULL GROUP BY ab_variant",
            [test_id],
        ).fetchall()
    )
    names = [name for name in declared if name] + sorted(set(counts) - set(declared))
    control = names[0] if names else None
    report = AbTestReport(
        key=key,
        project=project_key,
        mode=mode,
        status=status,
        metric=metric,
        metric_kind=kind,
        scoring=scoring,
        control=control,
        winner=winner,
    )
    lower_is_better = scoring == "lower_is_better"
    if mode == "preference":
        results = _preference_results(cursor, test_id, metric_id, names, counts, control)
    else:
        results = _metric_results(cursor, test_id, metric_id, kind, names, counts, control)
    for result in results:
        better = None
        if result.significant and result.difference is not None:
            better = (result.difference < 0) if lower_is_better else (result.difference > 0)
            if mode == "preference":
                better = result.difference > 0
        report.variants.append(_replace(result, better=better))
    return report


def _replace(result: VariantResult, **changes: Any) -> VariantResult:
    return VariantResult(**{**asdict(result), **changes})


def _metric_results(
    cursor: Any,
    test_id: int,
    metric_id: int | None,
    kind: str | None,
    names: list[str],
    counts: dict[str, int],
    control: str | None,
) -> list[VariantResult]:
    stats: dict[str, tuple[int, float | None, float | None, float]] = {}
    out_of_range: dict[str, int] = {}
    if metric_id is not None:
        rows = cursor.execute(
            "WITH per AS (SELECT completion_id, avg(value) FILTER (WHERE abs(value) <= ?) AS v, "
            "count(*) FILTER (WHERE NOT abs(value) <= ?) AS bad FROM metric_values "
            "WHERE metric_id = ? GROUP BY completion_id) "
            "SELECT i.ab_variant, count(*), avg(per.v), var_samp(per.v), sum(per.v), "
            "sum(per.bad) FROM per JOIN interactions i ON i.completion_id = per.completion_id "
            "WHERE i.ab_test_id = ? GROUP BY i.ab_variant",
            [METRIC_VALUE_LIMIT, METRIC_VALUE_LIMIT, metric_id, test_id],
        ).fetchall()
        for variant, n, mean, var, total, bad in rows:
            out_of_range[variant] = int(bad)
            if bad:  # no estimate from the values that happen to be in range
                stats[variant] = (int(n), None, None, 0.0)
            else:
                stats[variant] = (int(n), float(mean), var, float(total))
    base = stats.get(control) if control else None
    results = []
    for name in names:
        n, mean, var, total = stats.get(name, (0, None, None, 0.0))
        if mean is None:
            interval = Interval(None, None)
        elif kind == "bool":
            interval = proportion_interval(n, total)
        else:
            interval = mean_interval(n, mean, var)
        result = VariantResult(
            variant=name,
            is_control=name == control,
            n=counts.get(name, 0),
            observations=n,
            estimate=mean,
            ci_low=interval.low,
            ci_high=interval.high,
            out_of_range=out_of_range.get(name, 0),
        )
        if name != control and base is not None and base[1] is not None and mean is not None:
            if kind == "bool":
                p = two_proportion_p_value(n, total, base[0], base[3])
            else:
                p = welch_p_value(n, mean, var or 0.0, base[0], base[1], base[2] or 0.0)
            result = _replace(
                result,
                difference=mean - base[1],
                p_value=p,
                significant=p is not None and p < ALPHA,
            )
        results.append(result)
    return results


def _preference_results(
    cursor: Any,
    test_id: int,
    metric_id: int | None,
    names: list[str],
    counts: dict[str, int],
    control: str | None,
) -> list[VariantResult]:
    sql = (
        "SELECT a.ab_variant, b.ab_variant, c.tie IS NOT NULL, count(*) FROM comparisons c "
        "JOIN interactions a ON a.completion_id = c.preferred_completion_id "
        "JOIN interactions b ON b.completion_id = c.other_completion_id "
        "WHERE a.ab_test_id = ? AND b.ab_test_id = ?"
    )
    params: list[Any] = [test_id, test_id]
    if metric_id is not None:
        sql += " AND c.metric_id = ?"
        params.append(metric_id)
    tallies = cursor.execute(sql + " GROUP BY ALL", params).fetchall()
    results = []
    for name in names:
        wins = losses = ties = 0
        for preferred, other, tie, count in tallies:
            if {preferred, other} != {name, control} or preferred == other:
                continue
            if tie:
                ties += count
            elif preferred == name:
                wins += count
            else:
                losses += count
        if name == control:
            results.append(
                VariantResult(
                    variant=name,
                    is_control=True,
                    n=counts.get(name, 0),
                    observations=0,
                    estimate=None,
                    ci_low=None,
                    ci_high=None,
                )
            )
            continue
        decisive = wins + losses
        rate = wins / decisive if decisive else None
        interval = proportion_interval(decisive, wins)
        p = binomial_p_value(wins, losses)
        results.append(
            VariantResult(
                variant=name,
                is_control=False,
                n=counts.get(name, 0),
                observations=decisive,
                estimate=rate,
                ci_low=interval.low,
                ci_high=interval.high,
                difference=None if rate is None else rate - 0.5,
                p_value=p,
                significant=p is not None and p < ALPHA,
                wins=wins,
                losses=losses,
                ties=ties,
            )
        )
    return results
