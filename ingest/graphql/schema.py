"""Query and Mutation roots: the subset of Adaptive's GraphQL schema adaptive-sdk uses.

Mutations: addDirectScore (SDK 0.14), addDirectFeedback (0.13), createMetric.
Queries: metric, metrics, completion, completions, completionsGrouped.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import Sequence
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import MaskErrors, SchemaExtension
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext, Info

from ingest.errors import DATABASE_ERRORS
from ingest.graphql.abtests import AbMutation, AbQuery
from ingest.graphql.context import (
    EntityNotFound,
    ExpectedError,
    GraphQLContext,
    InvalidInput,
    graphql_error,
    run_store,
)
from ingest.graphql.inputs import (
    CursorPageInput,
    FeedbackAddInput,
    ListCompletionsFilterInput,
    MetricCreate,
    OrderPair,
    ScoreAddInput,
    ascending_order,
    filter_conditions,
    filter_leaves,
    page_window,
)
from ingest.graphql.limits import QueryLimiter
from ingest.graphql.scalars import SCALARS, IdOrKey, to_timestamp
from ingest.graphql.types import (
    Completion,
    CompletionConnection,
    CompletionGroupBy,
    DirectScore,
    DirectScoreStats,
    Metric,
    PageInfo,
)
from ingest.pending import wait_for_completions
from store.errors import InvalidInputError, NotFoundError, StoreError
from store.feedback import add_metric_value, coerce_value, completion_projects
from store.metrics import create_metric, list_metrics, lookup_metric_in
from store.readback import (
    Condition,
    check_filter_keys,
    find_interaction,
    group_by_model,
    list_interactions,
    model_id_condition,
)
from store.types import utcnow

log = logging.getLogger("interlog.graphql")


def metric_key_from_name(name: str) -> str:
    """A metric key for a MetricCreate without one: the name, lowercased, runs of other
    characters than letters, digits, '.', ':' and '-' turned into '_'."""
    return re.sub(r"[^a-z0-9.:-]+", "_", name.strip().lower()).strip("_")[:128]


Ctx = Info[GraphQLContext, None]


async def _scoped_conditions(
    info: Ctx, filter: ListCompletionsFilterInput
) -> tuple[int, list[Condition]]:
    """The filter's conditions in its project, after the checks of the shared grammar: the caps
    on label and metric conditions, metric names that exist; absent label keys are warnings."""
    leaves = filter_leaves(filter)
    try:
        leaves.check_counts()
    except InvalidInputError as exc:
        raise graphql_error(exc) from exc
    project = await info.context.project(str(filter.project))
    assert project.id is not None
    conditions = filter_conditions(filter, project.id)
    warnings = await info.context.read(
        check_filter_keys,
        info.context.engine,
        label_keys=[label.key for label in leaves.labels],
        metric_keys=leaves.metric_keys,
        project_id=project.id,
    )
    info.context.warnings += [w for w in warnings if w not in info.context.warnings]
    return project.id, conditions


async def _connection(
    info: Ctx,
    *,
    project_id: int,
    conditions: list[Condition],
    page: CursorPageInput,
    order: list[OrderPair] | None,
) -> CompletionConnection:
    limit, cursor = page_window(page)
    result = await info.context.read(
        list_interactions,
        info.context.engine,
        project_id=project_id,
        conditions=conditions,
        limit=limit,
        cursor=cursor,
        ascending=ascending_order(order),
    )
    return CompletionConnection(
        total_count=result.total_count,
        page_info=PageInfo(
            has_next_page=result.next_cursor is not None, end_cursor=result.next_cursor
        ),
        nodes=[Completion.from_view(view) for view in result.items],
    )


@strawberry.type
class CompletionGroup:
    key: str | None
    count: int
    direct_scores_stats: list[DirectScoreStats]
    project_id: strawberry.Private[int]
    conditions: strawberry.Private[list[Condition]]

    @strawberry.field
    async def completions(
        self, info: Ctx, page: CursorPageInput, order: list[OrderPair] | None = None
    ) -> CompletionConnection:
        return await _connection(
            info, project_id=self.project_id, conditions=self.conditions, page=page, order=order
        )


@strawberry.type
class CompletionGroupConnection:
    total_count: int
    group_by: CompletionGroupBy
    page_info: PageInfo
    nodes: list[CompletionGroup]


async def _add_score(
    info: Ctx, completion_id: uuid.UUID, metric_id: str, value: object, details: str | None,
    reason: str | None, user_id: str | None,
) -> DirectScore:  # fmt: skip
    context = info.context
    engine = context.engine

    def store(project_id: int) -> uuid.UUID:
        return add_metric_value(
            engine, project_id=project_id, completion_id=completion_id, metric=metric_id,
            value=value, details=details, reason=reason, user_id=user_id,
        )  # fmt: skip

    score_id: uuid.UUID | None = None
    project_id = context.visible_project_id
    if project_id is not None:
        # Fast path: the completion is usually stored already; wait only when it is not.
        try:
            score_id = await asyncio.to_thread(store, project_id)
        except NotFoundError as exc:
            if exc.entity != "completion":
                raise graphql_error(exc) from exc
        except StoreError as exc:
            raise graphql_error(exc) from exc
    if score_id is None:

        def find_missing(ids: Sequence[uuid.UUID]) -> list[uuid.UUID]:
            found = completion_projects(engine, completion_ids=ids)
            return [i for i in ids if i not in found or found[i] != (project_id or found[i])]

        assert context.request is not None
        if await wait_for_completions(context.request.app, [completion_id], find_missing):
            raise EntityNotFound(f"completion {completion_id} not found")
        found = await run_store(completion_projects, engine, completion_ids=[completion_id])
        project_id = found[completion_id]
        score_id = await run_store(store, project_id)
    metric = await run_store(lookup_metric_in, engine, project_id=project_id, id_or_key=metric_id)
    assert metric is not None
    return DirectScore(
        id=score_id,
        value=coerce_value(metric, value),
        metric=Metric.from_info(metric),
        reason=reason,
        details=details,
        user_id=user_id,
        created_at=to_timestamp(utcnow()),
    )


@strawberry.type
class Mutation:
    @strawberry.mutation
    async def add_direct_score(
        self, info: Ctx, completion_id: uuid.UUID, metric_id: IdOrKey, input: ScoreAddInput
    ) -> DirectScore:
        """Attach a metric value to a completion (adaptive-sdk 0.14 `log_metric`)."""
        return await _add_score(
            info, completion_id, str(metric_id), input.value, input.details, input.reason,
            input.user_id,
        )  # fmt: skip

    @strawberry.mutation
    async def add_direct_feedback(
        self, info: Ctx, completion_id: uuid.UUID, metric_id: IdOrKey, input: FeedbackAddInput
    ) -> DirectScore:
        """Attach a metric value to a completion (adaptive-sdk 0.13 `log_metric`)."""
        return await _add_score(
            info, completion_id, str(metric_id), input.value, input.details, input.reason,
            input.user_id,
        )  # fmt: skip

    @strawberry.mutation
    async def create_metric(self, info: Ctx, project: IdOrKey, input: MetricCreate) -> Metric:
        """Register a metric (feedback key) in a project."""
        scoped = await info.context.project(str(project))
        row = await run_store(
            create_metric, info.context.engine, project_key=scoped.key,
            key=input.key or metric_key_from_name(input.name), kind=input.kind.value,
            scoring=input.scoring_type.value, name=input.name, description=input.description,
        )  # fmt: skip
        return Metric.from_info(row)


@strawberry.type
class Query:
    @strawberry.field
    async def metric(
        self, info: Ctx, metric_id_or_key: IdOrKey, project_id_or_key: IdOrKey
    ) -> Metric | None:
        """A project's metric by id or key; null if the project has no such metric."""
        project = await info.context.project(str(project_id_or_key))
        assert project.id is not None
        row = await run_store(
            lookup_metric_in, info.context.engine, project_id=project.id,
            id_or_key=str(metric_id_or_key),
        )  # fmt: skip
        return Metric.from_info(row) if row is not None else None

    @strawberry.field
    async def metrics(self, info: Ctx) -> list[Metric]:
        """Every metric the key can see (an admin key: every project's)."""
        rows = await run_store(
            list_metrics, info.context.engine, project_id=info.context.visible_project_id
        )
        return [Metric.from_info(row) for row in rows]

    @strawberry.field
    async def completion(self, info: Ctx, project: IdOrKey, id: uuid.UUID) -> Completion | None:
        """One interaction of the project, or null."""
        scoped = await info.context.project(str(project))
        view = await info.context.read(
            find_interaction, info.context.engine, completion_id=id, project_id=scoped.id
        )
        return Completion.from_view(view) if view is not None else None

    @strawberry.field
    async def completions(
        self,
        info: Ctx,
        filter: ListCompletionsFilterInput,
        page: CursorPageInput,
        order: list[OrderPair] | None = None,
    ) -> CompletionConnection:
        """A page of the project's interactions matching the filter (newest first by default)."""
        project_id, conditions = await _scoped_conditions(info, filter)
        return await _connection(
            info, project_id=project_id, conditions=conditions, page=page, order=order
        )

    @strawberry.field
    async def completions_grouped(
        self,
        info: Ctx,
        group_by: CompletionGroupBy,
        filter: ListCompletionsFilterInput,
        page: CursorPageInput,
        order: list[OrderPair] | None = None,
    ) -> CompletionGroupConnection:
        """Interactions grouped by model, each group with per-metric score statistics."""
        if group_by != CompletionGroupBy.MODEL:
            raise InvalidInput("only groupBy: MODEL is supported")
        project_id, conditions = await _scoped_conditions(info, filter)
        groups = await info.context.read(
            group_by_model, info.context.engine, project_id=project_id, conditions=conditions
        )
        if not ascending_order(order, default_ascending=True):
            groups.reverse()
        nodes = [
            CompletionGroup(
                key=group.key,
                count=group.count,
                direct_scores_stats=[
                    DirectScoreStats.from_stats(s, project_id) for s in group.stats
                ],
                project_id=project_id,
                conditions=[*conditions, model_id_condition(group.model_id)],
            )
            for group in groups
        ]
        return CompletionGroupConnection(
            total_count=len(nodes),
            group_by=group_by,
            page_info=PageInfo(has_next_page=False, end_cursor=None),
            nodes=nodes,
        )


def _is_expected(error: GraphQLError) -> bool:
    """Client-facing errors: GraphQL validation/coercion errors and our ExpectedError family."""
    return error.path is None or isinstance(error.original_error, ExpectedError)


class AnswerWarnings(SchemaExtension):
    """Puts the resolvers' warnings (GraphQLContext.warnings) in the answer's `extensions`."""

    def get_results(self) -> dict[str, Any]:
        warnings = getattr(self.execution_context.context, "warnings", None)
        return {"warnings": list(warnings)} if warnings else {}


class InterlogSchema(strawberry.Schema):
    """Logs only unexpected resolver failures; client errors are answered, not logged."""

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        for error in errors:
            if not _is_expected(error):
                log.error("GraphQL resolver failed", exc_info=error.original_error)


schema = InterlogSchema(
    query=merge_types("Query", (Query, AbQuery)),  # A/B campaigns: ingest/graphql/abtests.py
    mutation=merge_types("Mutation", (Mutation, AbMutation)),
    config=StrawberryConfig(scalar_map=SCALARS),
    extensions=[
        QueryLimiter,  # depth, aliases, cost, tokens: refused before validation (limits.py)
        # Database errors are left for the router: it answers them as REST does (503 with
        # Retry-After when the store is away; ingest/graphql/__init__.py).
        lambda: MaskErrors(
            should_mask_error=lambda error: (
                not (_is_expected(error) or isinstance(error.original_error, DATABASE_ERRORS))
            )
        ),
        AnswerWarnings,
    ],
)
