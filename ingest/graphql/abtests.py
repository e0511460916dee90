"""A/B campaigns over GraphQL, as adaptive-sdk's `client.ab_tests` sends them (protocol section 6).

Operations: createAbCampaign, abCampaigns(filter), abCampaign(idOrKey) with its report, and
cancelAbCampaign. An Adaptive campaign is an Interlog A/B test: `modelServices` are the variants
(equal weights, the first is the control), `scoreType` DIRECT is mode `metric` and COMPARISON is
mode `preference`. Interlog sends all of a project's traffic to its active test, so
`trafficSplit` is reported as 1.0 whatever was asked. A project key sees and manages only its own
project's campaigns (others are "not found"); an admin key sees every project's.
"""

from __future__ import annotations

from enum import Enum

import strawberry
from strawberry.types import Info

from ingest.graphql.context import (
    EntityNotFound,
    GraphQLContext,
    InvalidInput,
    graphql_error,
    run_store,
)
from ingest.graphql.scalars import IdOrKey, Timestamp, to_timestamp
from ingest.graphql.types import Metric, Model, Project
from store.ab_lifecycle import AbTestDetails, cancel_ab_test, get_ab_test, list_ab_test_details
from store.ab_sequential import SequentialVerdict, preference_counts, sequential_verdict
from store.abtests import create_ab_test
from store.analytics.questions import AbTestReport
from store.catalog import get_model
from store.errors import NotFoundError, StoreError
from store.metrics import lookup_metric_in, project_by_id

Ctx = Info[GraphQLContext, None]


@strawberry.enum(name="AbcampaignStatus")
class AbcampaignStatus(Enum):
    WARMUP = "WARMUP"
    IN_PROGRESS = "IN_PROGRESS"
    DONE = "DONE"
    CANCELLED = "CANCELLED"


@strawberry.enum
class ScoreType(Enum):
    DIRECT = "DIRECT"
    COMPARISON = "COMPARISON"


_STATUS = {
    "active": AbcampaignStatus.IN_PROGRESS,
    "done": AbcampaignStatus.DONE,
    "cancelled": AbcampaignStatus.CANCELLED,
}
_STORE_STATUS = {v: k for k, v in _STATUS.items()}


@strawberry.input(name="AbcampaignCreate")
class AbcampaignCreate:
    key: str
    name: str | None = None
    metric: str
    project: str
    model_services: list[str]
    auto_deploy: bool
    traffic_split: float
    score_type: ScoreType = ScoreType.DIRECT


@strawberry.input
class AbCampaignFilter:
    active: bool | None = None
    status: AbcampaignStatus | None = None
    project: str | None = None


@strawberry.type
class AbInterval:
    start: float
    middle: float
    end: float


@strawberry.type
class AbVariantComparison:
    scores: int
    wins: int
    losses: int
    ties_good: int
    ties_bad: int
    variant: Model


@strawberry.type
class AbReportVariant:
    variant: Model
    interval: AbInterval | None
    scores: int
    comparisons: list[AbVariantComparison] | None


@strawberry.type
class AbReport:
    p_value: float | None = strawberry.field(
        description="Smallest always-valid (mSPRT) p-value of a variant against the control."
    )
    variants: list[AbReportVariant]


def _model(key: str) -> Model:
    return Model(id=strawberry.ID(key), key=key, name=key)


@strawberry.type(name="Abcampaign")
class Abcampaign:
    id: strawberry.ID
    key: str
    name: str
    status: AbcampaignStatus
    begin_date: Timestamp
    end_date: Timestamp | None
    score_type: ScoreType
    traffic_split: float
    auto_deploy: bool
    winner: str | None
    details: strawberry.Private[AbTestDetails]
    verdict: strawberry.Private[SequentialVerdict]

    @classmethod
    def of(cls, test: AbTestDetails, verdict: SequentialVerdict) -> Abcampaign:
        return cls(
            id=strawberry.ID(str(test.id)),
            key=test.key,
            name=test.key,
            status=_STATUS[test.status],
            begin_date=to_timestamp(test.created_at) if test.created_at else Timestamp(0),
            end_date=to_timestamp(test.ended_at) if test.ended_at else None,
            score_type=ScoreType.COMPARISON if test.mode == "preference" else ScoreType.DIRECT,
            traffic_split=1.0,
            auto_deploy=test.auto_deploy,
            winner=test.winner,
            details=test,
            verdict=verdict,
        )

    @strawberry.field
    async def metric(self, info: Ctx) -> Metric | None:
        if self.details.metric_id is None:
            return None
        row = await run_store(
            lookup_metric_in, info.context.engine, project_id=self.details.project_id,
            id_or_key=self.details.metric_id,
        )  # fmt: skip
        return Metric.from_info(row) if row is not None else None

    @strawberry.field
    async def project(self, info: Ctx) -> Project | None:
        row = await run_store(
            project_by_id, info.context.engine, project_id=self.details.project_id
        )
        return Project.from_row(row) if row is not None else None

    @strawberry.field
    async def models(self, info: Ctx) -> list[Model]:
        models = []
        for variant in self.details.variants:
            try:
                row = await run_store(get_model, info.context.engine, key=str(variant["model"]))
            except NotFoundError:
                continue
            models.append(Model(id=strawberry.ID(str(row.id)), key=row.key, name=row.name))
        return models

    @strawberry.field
    def scores(self) -> int:
        return sum(self.verdict.scores.values())

    @strawberry.field
    def has_enough_scores(self) -> bool:
        return self.verdict.enough_scores

    @strawberry.field
    async def report(self, info: Ctx) -> AbReport:
        """Per variant: scores, the 95% interval of its estimate and, in preference campaigns,
        its comparisons with the control; pValue is the always-valid one that ends campaigns."""
        test, engine = self.details, info.context.engine
        try:
            report: AbTestReport = await run_store(
                info.context.analytics.call, "ab_test_report", test.key, scope=test.project_id,
                project=test.project, max_staleness=0,
            )  # fmt: skip
            intervals = {v.variant: v for v in report.variants}
        except StoreError:
            intervals = {}
        pairs: dict[tuple[str, str], int] = {}
        if test.mode == "preference" and test.metric_id is not None:
            pairs = await run_store(
                preference_counts, engine, test_id=test.id, metric_id=test.metric_id
            )
        variants = []
        control = test.control
        for name in (str(v["model"]) for v in test.variants):
            result = intervals.get(name)
            interval = None
            if result is not None and None not in (result.ci_low, result.estimate, result.ci_high):
                interval = AbInterval(
                    start=float(result.ci_low),  # type: ignore[arg-type]
                    middle=float(result.estimate),  # type: ignore[arg-type]
                    end=float(result.ci_high),  # type: ignore[arg-type]
                )
            comparisons = None
            if test.mode == "preference" and control is not None and name != control:
                wins, losses = pairs.get((name, control), 0), pairs.get((control, name), 0)
                ties = int(result.ties or 0) if result is not None else 0
                comparisons = [
                    AbVariantComparison(
                        scores=wins + losses + ties, wins=wins, losses=losses, ties_good=ties,
                        ties_bad=0, variant=_model(control),
                    )
                ]  # fmt: skip
            variants.append(
                AbReportVariant(
                    variant=_model(name),
                    interval=interval,
                    scores=self.verdict.scores.get(name, 0),
                    comparisons=comparisons,
                )
            )
        return AbReport(p_value=self.verdict.p_value, variants=variants)


async def _campaign(info: Ctx, test: AbTestDetails) -> Abcampaign:
    verdict = await run_store(sequential_verdict, info.context.engine, test=test)
    return Abcampaign.of(test, verdict)


async def _find(info: Ctx, id_or_key: str) -> AbTestDetails:
    """A campaign the key may see, by key (or numeric id)."""
    visible = info.context.visible_project_id
    try:
        return await run_store(get_ab_test, info.context.engine, key=id_or_key, project_id=visible)
    except NotFoundError:
        if id_or_key.isdigit():
            tests = await run_store(
                list_ab_test_details, info.context.engine,
                project_ids=None if visible is None else [visible],
            )  # fmt: skip
            for test in tests:
                if test.id == int(id_or_key):
                    return test
        raise EntityNotFound(f"A/B campaign {id_or_key} not found") from None
    except StoreError as exc:
        raise InvalidInput(str(exc)) from exc


@strawberry.type
class AbQuery:
    @strawberry.field
    async def ab_campaigns(self, info: Ctx, filter: AbCampaignFilter) -> list[Abcampaign]:
        """A/B campaigns of the visible projects, newest first."""
        project_ids = None
        if filter.project is not None:
            project = await info.context.project(filter.project)
            project_ids = [project.id]
        elif info.context.visible_project_id is not None:
            project_ids = [info.context.visible_project_id]
        status = _STORE_STATUS.get(filter.status) if filter.status is not None else None
        if filter.status is not None and status is None:
            return []  # WARMUP: Interlog has no warm-up phase
        if filter.active is not None:
            if status is not None and (status == "active") != filter.active:
                return []
            status = "active" if filter.active else status
        tests = await run_store(
            list_ab_test_details, info.context.engine, project_ids=project_ids, status=status
        )
        if filter.active is False:
            tests = [t for t in tests if t.status != "active"]
        return [await _campaign(info, test) for test in tests]

    @strawberry.field
    async def ab_campaign(self, info: Ctx, id_or_key: IdOrKey) -> Abcampaign | None:
        """One A/B campaign with its report."""
        return await _campaign(info, await _find(info, str(id_or_key)))


@strawberry.type
class AbMutation:
    @strawberry.mutation
    async def create_ab_campaign(self, info: Ctx, input: AbcampaignCreate) -> Abcampaign:
        """Start an A/B test between models attached to the project (equal weights)."""
        project = await info.context.project(input.project)
        if not 0 < input.traffic_split <= 1:
            raise InvalidInput("trafficSplit must be in (0, 1]")
        try:
            await run_store(
                create_ab_test, info.context.engine, project_key=project.key, key=input.key,
                variants=[{"model": m, "weight": 1.0} for m in input.model_services],
                metric_key=input.metric, auto_deploy=input.auto_deploy,
                mode="preference" if input.score_type == ScoreType.COMPARISON else "metric",
            )  # fmt: skip
        except StoreError as exc:
            raise graphql_error(exc) from exc
        _forget_routes(info, project.key)
        test = await run_store(
            get_ab_test, info.context.engine, key=input.key, project_id=project.id
        )
        return await _campaign(info, test)

    @strawberry.mutation
    async def cancel_ab_campaign(self, info: Ctx, input: IdOrKey) -> str:
        """Cancel an active campaign; traffic goes back to the project's default model."""
        test = await _find(info, str(input))
        try:
            await run_store(
                cancel_ab_test, info.context.engine, key=test.key, project_id=test.project_id
            )
        except StoreError as exc:
            raise InvalidInput(str(exc)) from exc
        _forget_routes(info, test.project)
        return test.key


def _forget_routes(info: Ctx, project_key: str) -> None:
    request = info.context.request
    routing = getattr(request.app.state, "routing", None) if request is not None else None
    if routing is not None:
        routing.invalidate(project_key)
