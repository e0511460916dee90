"""REST analytics for notebooks on the gateway URL: summary, label pickers, A/B test reports.

The same questions as `store.analytics`, with the same filters as the export, scoped by the key.
Each runs in a worker thread under the read timeout and is cancelled when the client goes away
(ingest/reads.py). Answers say how fresh they are (`freshness`: every change committed before
`synced_at` is included; `behind` when the sync owner had not caught up) and carry `warnings`
(label keys of the filter that no interaction in scope has).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from ingest.auth import PrincipalDep, check_project_key
from ingest.export_api import FiltersDep
from ingest.reads import run_read
from store import analytics

router = APIRouter(prefix="/api/v1/analytics", tags=["analytics"])


def _answer(answer: analytics.Answer) -> dict[str, Any]:
    """The JSON answer, straight from Arrow (pandas never loads in the gateway)."""
    return {
        "data": answer.records(),
        "synced_at": answer.freshness.synced_at.isoformat(),
        "freshness": answer.freshness.to_dict(),
        "warnings": list(answer.warnings),
    }


@router.get("/summary")
async def read_summary(
    request: Request,
    principal: PrincipalDep,
    filters: FiltersDep,
    by: Annotated[
        str | None, Query(description="model, variant, day, hour, project, status or label:<key>")
    ] = None,
) -> dict[str, Any]:
    """Per group: count, error rate, latency/TTFT p50/p95/p99, tokens, metric means with 95% CIs."""
    answer = await run_read(
        request,
        request.app.state.analytics.call,
        "summary_answer",
        filters,
        scope=principal,
        by=by,
    )
    return _answer(answer)


@router.get("/labels")
async def read_label_keys(
    request: Request, principal: PrincipalDep, filters: FiltersDep
) -> dict[str, Any]:
    """Label keys used by the matching interactions."""
    keys = await run_read(
        request, request.app.state.analytics.call, "label_keys", filters, scope=principal
    )
    return {"data": keys}


@router.get("/labels/{key}/values")
async def read_label_values(
    request: Request, principal: PrincipalDep, filters: FiltersDep, key: str
) -> dict[str, Any]:
    """Values of one label key with their counts, most used first."""
    answer = await run_read(
        request,
        request.app.state.analytics.call,
        "label_values_answer",
        key,
        filters,
        scope=principal,
    )
    return _answer(answer)


@router.get("/ab-tests/{key}/report")
async def read_ab_test_report(
    request: Request, principal: PrincipalDep, key: str, project: str | None = None
) -> dict[str, Any]:
    """Per variant: n, estimate with 95% interval, difference to control, p-value, significance."""
    if project is not None:
        check_project_key(principal, project)
    report = await run_read(
        request,
        request.app.state.analytics.call,
        "ab_test_report",
        key,
        scope=principal,
        project=project,
    )
    return report.to_dict()
