"""Output types with Adaptive's names (Metric, Completion, DirectScore, ...) built from store views.

Only the fields adaptive-sdk reads (graphql_client/fragments.py) plus a few obvious extras
(sessionId, userId, status) exist. Lazy fields (metric usage, the other side of a comparison)
resolve through the request context, which caches per request.
"""

from __future__ import annotations

import uuid
from enum import Enum
from typing import Any

import strawberry
from strawberry.types import Info

from ingest.graphql.context import GraphQLContext, run_store
from ingest.graphql.scalars import JSON, Timestamp, to_timestamp
from store.metrics import metric_usage
from store.models import Metric as MetricRow
from store.models import Project as ProjectRow
from store.readback import (
    ComparisonView,
    InteractionView,
    MetricInfo,
    MetricStats,
    find_interaction,
)


@strawberry.enum
class MetricKind(Enum):
    SCALAR = "SCALAR"
    BOOL = "BOOL"


@strawberry.enum
class MetricScoringType(Enum):
    HIGHER_IS_BETTER = "HIGHER_IS_BETTER"
    LOWER_IS_BETTER = "LOWER_IS_BETTER"


@strawberry.enum
class CompletionSource(Enum):
    LIVE = "LIVE"
    OFFLINE = "OFFLINE"
    AUTOMATION = "AUTOMATION"
    DATASET = "DATASET"
    EVALUATION = "EVALUATION"


@strawberry.enum
class CompletionGroupBy(Enum):
    MODEL = "MODEL"
    PROMPT = "PROMPT"


@strawberry.enum
class SortDirection(Enum):
    ASC = "ASC"
    DESC = "DESC"


@strawberry.type
class Project:
    id: strawberry.ID
    key: str
    name: str
    description: str

    @classmethod
    def from_row(cls, row: ProjectRow) -> Project:
        return cls(
            id=strawberry.ID(str(row.id)),
            key=row.key,
            name=row.name,
            description=row.description or "",
        )


@strawberry.type
class Metric:
    id: strawberry.ID
    key: str | None
    name: str
    kind: MetricKind
    description: str
    scoring_type: MetricScoringType
    created_at: Timestamp
    metric_id: strawberry.Private[int]
    project_id: strawberry.Private[int]

    @classmethod
    def from_info(cls, info: MetricInfo | MetricRow, project_id: int = 0) -> Metric:
        assert info.id is not None
        return cls(
            id=strawberry.ID(str(info.id)),
            key=info.key,
            name=info.name,
            kind=MetricKind(info.kind.upper()),
            description=info.description or "",
            scoring_type=MetricScoringType(info.scoring.upper()),
            created_at=to_timestamp(info.created_at),
            metric_id=info.id,
            project_id=getattr(info, "project_id", project_id),
        )

    async def _usage(self, info: Info[GraphQLContext, None]) -> tuple[bool, bool]:
        cache = info.context.metric_usage
        if self.metric_id not in cache:
            found = await run_store(metric_usage, info.context.engine, metric_ids=[self.metric_id])
            cache.update(found)
        return cache[self.metric_id]

    @strawberry.field
    async def has_direct_scores(self, info: Info[GraphQLContext, None]) -> bool:
        return (await self._usage(info))[0]

    @strawberry.field
    async def has_comparison_scores(self, info: Info[GraphQLContext, None]) -> bool:
        return (await self._usage(info))[1]

    @strawberry.field
    async def projects(self, info: Info[GraphQLContext, None]) -> list[Project]:
        project = await info.context.project_by_id(self.project_id)
        return [Project.from_row(project)] if project is not None else []


@strawberry.type
class Model:
    id: strawberry.ID
    key: str
    name: str


@strawberry.type
class ChatMessage:
    role: str
    content: str


@strawberry.type
class Label:
    key: str
    value: str


@strawberry.type
class Usage:
    completion_tokens: int
    prompt_tokens: int
    total_tokens: int


@strawberry.type
class CompletionMetadata:
    parameters: JSON | None
    timings: JSON | None
    usage: Usage | None
    system: JSON | None


@strawberry.type
class DirectScore:
    id: uuid.UUID
    value: float
    metric: Metric | None
    reason: str | None
    details: str | None
    user_id: str | None
    created_at: Timestamp


@strawberry.type
class ComparisonScore:
    id: uuid.UUID
    created_at: Timestamp
    metric: Metric | None
    tie: str | None
    view: strawberry.Private[ComparisonView]

    @strawberry.field
    async def project(self, info: Info[GraphQLContext, None]) -> Project | None:
        project = await info.context.project_by_id(self.view.project_id)
        return Project.from_row(project) if project is not None else None

    @strawberry.field
    async def prefered_completion(self, info: Info[GraphQLContext, None]) -> Completion | None:
        return await _completion(info, self.view.preferred_completion_id)

    @strawberry.field
    async def other_completion(self, info: Info[GraphQLContext, None]) -> Completion | None:
        return await _completion(info, self.view.other_completion_id)

    @classmethod
    def from_view(cls, view: ComparisonView) -> ComparisonScore:
        return cls(
            id=view.id,
            created_at=to_timestamp(view.created_at),
            metric=Metric.from_info(view.metric, view.project_id),
            tie=view.tie,
            view=view,
        )


async def _completion(
    info: Info[GraphQLContext, None], completion_id: uuid.UUID
) -> Completion | None:
    view = await info.context.read(
        find_interaction,
        info.context.engine,
        completion_id=completion_id,
        project_id=info.context.visible_project_id,
    )
    return Completion.from_view(view) if view is not None else None


def _content_text(content: Any) -> str:
    """Message content as one string (image parts become a placeholder): the SDK wants text."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text":
                parts.append(str(part.get("text", "")))
            elif isinstance(part, dict):
                parts.append(f"[{part.get('type', 'part')}]")
            else:
                parts.append(str(part))
        return "\n".join(parts)
    return str(content)


@strawberry.type
class Completion:
    id: uuid.UUID
    chat_messages: list[ChatMessage]
    completion: str | None
    tool_calls: JSON | None = strawberry.field(
        description="The answer's tool calls, as OpenAI's message.tool_calls (null: none)."
    )
    source: CompletionSource
    model: Model | None
    direct_scores: list[DirectScore]
    comparison_scores: list[ComparisonScore]
    labels: list[Label]
    metadata: CompletionMetadata
    created_at: Timestamp
    session_id: uuid.UUID
    user_id: str | None
    status: str

    @classmethod
    def from_view(cls, view: InteractionView) -> Completion:
        usage = None
        if view.prompt_tokens is not None or view.completion_tokens is not None:
            prompt, completion = view.prompt_tokens or 0, view.completion_tokens or 0
            usage = Usage(
                completion_tokens=completion, prompt_tokens=prompt, total_tokens=prompt + completion
            )
        model = None
        if view.model_id is not None:
            model = Model(
                id=strawberry.ID(str(view.model_id)),
                key=view.model_key or "",
                name=view.model_name or "",
            )
        return cls(
            id=view.completion_id,
            chat_messages=[
                ChatMessage(role=str(m.get("role", "")), content=_content_text(m.get("content")))
                for m in view.messages
            ],
            completion=view.completion,
            tool_calls=None if view.tool_calls is None else JSON(view.tool_calls),
            source=CompletionSource(view.source),
            model=model,
            direct_scores=[
                DirectScore(
                    id=score.id,
                    value=score.value,
                    metric=Metric.from_info(score.metric, view.project_id),
                    reason=score.reason,
                    details=score.details,
                    user_id=score.user_id,
                    created_at=to_timestamp(score.created_at),
                )
                for score in view.scores
            ],
            comparison_scores=[ComparisonScore.from_view(c) for c in view.comparisons],
            labels=[Label(key=k, value=v) for k, v in sorted(view.labels.items())],
            metadata=CompletionMetadata(
                parameters=JSON(view.params),
                timings=JSON({"ttft_ms": view.ttft_ms, "latency_ms": view.latency_ms}),
                usage=usage,
                system=JSON({"finish_reason": view.finish_reason, "replica": view.replica}),
            ),
            created_at=to_timestamp(view.created_at),
            session_id=view.session_id,
            user_id=view.user_id,
            status=view.status,
        )


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class CompletionConnection:
    total_count: int
    page_info: PageInfo
    nodes: list[Completion]


@strawberry.type
class DirectScoreStats:
    metric: Metric
    scores: int
    average: float | None
    max: float | None
    min: float | None
    stddev: float | None
    sum: float | None

    @classmethod
    def from_stats(cls, stats: MetricStats, project_id: int) -> DirectScoreStats:
        return cls(
            metric=Metric.from_info(stats.metric, project_id),
            scores=stats.count,
            average=stats.average,
            max=stats.maximum,
            min=stats.minimum,
            stddev=stats.stddev,
            sum=stats.total,
        )
