"""Management REST API for A/B tests under /api/v1/admin/abtests (admin keys only)."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from ingest.ab_monitor import forget_routes
from ingest.admin_api import Key, PathKey, run_store
from ingest.auth import require_admin
from store.ab_lifecycle import AbTestDetails, cancel_ab_test, get_ab_test, list_ab_test_details
from store.ab_sequential import sequential_verdict
from store.abtests import create_ab_test
from store.errors import NotFoundError

router = APIRouter(
    prefix="/api/v1/admin", tags=["management"], dependencies=[Depends(require_admin)]
)


def _finite(value: Any) -> Any:
    """JSON-safe: NaN and infinities (undefined statistics) become null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


class Variant(BaseModel):
    model: Key
    weight: Annotated[float, Field(gt=0, le=1_000_000)] = 1.0


class AbTestCreate(BaseModel):
    project: Key
    key: Key
    variants: Annotated[list[Variant], Field(min_length=2, max_length=32)] = Field(
        description="Models attached to the project; the first is the control."
    )
    metric: Key | None = Field(default=None, description="The metric the test is judged on.")
    mode: Literal["metric", "preference"] = Field(
        default="metric",
        description="`metric`: compare each variant's mean score; `preference`: win rate in "
        "comparisons against the control.",
    )
    auto_deploy: bool = Field(
        default=False, description="When the test ends with a winner, make it the default model."
    )


class VariantVerdict(BaseModel):
    variant: str
    n: int
    difference: float
    p_value: float = Field(description="Always-valid (mSPRT) p-value against the control.")
    significant: bool
    better: bool | None


class AbTestOut(BaseModel):
    """An A/B test: variants and weights, status, winner and why it ended."""

    id: int
    key: str
    project: str
    mode: str
    status: Literal["active", "done", "cancelled"]
    metric: str | None
    auto_deploy: bool
    variants: list[Variant]
    winner: str | None
    end_reason: str | None
    created_at: datetime | None
    ended_at: datetime | None

    @classmethod
    def of(cls, test: AbTestDetails) -> AbTestOut:
        data = dict(test.__dict__)
        data.pop("project_id")
        data.pop("metric_id")
        return cls(**data)


class AbTestWithReport(AbTestOut):
    sequential: list[VariantVerdict] = Field(
        description="Each challenger against the control under the mSPRT (what ends the test)."
    )
    enough_scores: bool
    scores: dict[str, int]
    report: dict[str, Any] = Field(
        description="Fixed-sample report (Welch / two-proportion / binomial) per variant."
    )


class AbTestList(BaseModel):
    data: list[AbTestOut]


@router.post("/abtests", status_code=201, response_model=AbTestOut)
async def create_abtest(request: Request, body: AbTestCreate) -> AbTestOut:
    """Start an A/B test; the project's traffic is shared by weight from the next request."""
    engine = request.app.state.engine
    await run_store(
        create_ab_test,
        engine,
        project_key=body.project,
        key=body.key,
        variants=[v.model_dump() for v in body.variants],
        metric_key=body.metric,
        mode=body.mode,
        auto_deploy=body.auto_deploy,
    )
    forget_routes(request.app, body.project)
    return AbTestOut.of(
        await run_store(get_ab_test, engine, key=body.key, project_key=body.project)
    )


@router.get("/abtests", response_model=AbTestList)
async def list_abtests(
    request: Request,
    project: Annotated[str | None, Query(max_length=128)] = None,
    status: Literal["active", "done", "cancelled"] | None = None,
) -> AbTestList:
    """A/B tests, newest first."""
    tests = await run_store(
        list_ab_test_details, request.app.state.engine, project_key=project, status=status
    )
    return AbTestList(data=[AbTestOut.of(t) for t in tests])


@router.get("/abtests/{project}/{key}", response_model=AbTestWithReport)
async def get_abtest(request: Request, project: PathKey, key: PathKey) -> AbTestWithReport:
    """One A/B test with its sequential verdict and its fixed-sample report."""
    engine = request.app.state.engine
    test = await run_store(get_ab_test, engine, key=key, project_key=project)
    verdict = await run_store(sequential_verdict, engine, test=test)
    try:
        report = await run_store(
            request.app.state.analytics.call, "ab_test_report", key, scope=test.project_id,
            project=project, max_staleness=0,
        )  # fmt: skip
        report_data = _finite(report.to_dict())
    except NotFoundError:
        report_data = {}
    return AbTestWithReport(
        **AbTestOut.of(test).model_dump(),
        sequential=[VariantVerdict(**c.__dict__) for c in verdict.comparisons],
        enough_scores=verdict.enough_scores,
        scores=verdict.scores,
        report=report_data,
    )


@router.post("/abtests/{project}/{key}/cancel", response_model=AbTestOut)
async def cancel_abtest(request: Request, project: PathKey, key: PathKey) -> AbTestOut:
    """Cancel an active test: traffic goes back to the default model at once."""
    test = await run_store(cancel_ab_test, request.app.state.engine, key=key, project_key=project)
    forget_routes(request.app, project)
    return AbTestOut.of(test)
