"""The body of POST /api/v1/interactions (Adaptive §5.2, plus extras) and its checks.

`LoggedInteractionIn` is the schema (OpenAPI, and pydantic's judgement of any item). Bulk
imports check thousands of items per request, so `prepare_item` first tries `plain_item`: a
hand-written check of the everyday shape (plain JSON types, canonical UUIDs, RFC 3339 times)
that accepts only what pydantic accepts and gives the same values, at a fraction of the cost.
Anything else (a bad item, or an unusual spelling such as an upper-case UUID) goes to pydantic,
which decides and words the error.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, NotRequired, cast

from pydantic import Field, TypeAdapter, ValidationError
from typing_extensions import TypedDict

from ingest.errors import BadRequest, NotFound, Unprocessable
from ingest.limits import RequestRefused, check_labels
from ingest.vision import prepare_messages
from store.ids import uuid7_text_at
from store.interactions import InteractionRecord
from store.keys import Principal
from store.logged_interactions import CatalogNames
from store.settings import Settings
from store.types import utcnow

#: Token counts are INTEGER columns: larger values are refused here, not by the database.
MAX_TOKENS = 2**31 - 1
MAX_USER_LENGTH = 256
MAX_FINISH_REASON_LENGTH = 64


class FeedbackIn(TypedDict):
    """A metric value for the logged completion (`metric` is the metric key)."""

    metric: str
    value: float | bool
    details: NotRequired[str | None]
    reason: NotRequired[str | None]
    id: NotRequired[str | None]


Tokens = Annotated[int, Field(ge=0, le=MAX_TOKENS)]


class LoggedInteractionIn(TypedDict):
    """One interaction as Adaptive's `interactions.create` sends it, plus optional extras.

    `model_service` is the key of a registered model; `project` defaults to the key's project.
    A TypedDict, not a model: validating it is ten times cheaper, which bulk imports need.
    """

    model_service: str
    project: NotRequired[str | None]
    messages: Annotated[list[dict[str, Any]], Field(min_length=1)]
    completion: str
    feedbacks: NotRequired[list[FeedbackIn] | None]
    user: NotRequired[Annotated[str, Field(max_length=MAX_USER_LENGTH)] | None]
    session_id: NotRequired[uuid.UUID | None]
    created_at: NotRequired[datetime | None]
    labels: NotRequired[dict[str, str] | None]
    completion_id: NotRequired[uuid.UUID | None]
    finish_reason: NotRequired[Annotated[str, Field(max_length=MAX_FINISH_REASON_LENGTH)] | None]
    prompt_tokens: NotRequired[Tokens | None]
    completion_tokens: NotRequired[Tokens | None]
    latency_ms: NotRequired[Annotated[float, Field(ge=0)] | None]
    ttft_ms: NotRequired[Annotated[float, Field(ge=0)] | None]


ITEM_ADAPTER = TypeAdapter(LoggedInteractionIn)

_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?(Z|[+-][0-9]{2}:[0-9]{2})"
)
_OPTIONAL_TEXT_BOUNDED = (
    ("user", MAX_USER_LENGTH),
    ("finish_reason", MAX_FINISH_REASON_LENGTH),
)


def _plain_uuid(value: Any) -> bool:
    """Whether VALUE is None or a UUID in canonical text (lower-case, hyphenated)."""
    return value is None or (type(value) is str and _CANONICAL_UUID.fullmatch(value) is not None)


def _plain_time(value: Any) -> datetime | bool | None:
    """An RFC 3339 time with its offset as an aware datetime, None for None, else False."""
    if value is None:
        return None
    if type(value) is not str or not _RFC3339.fullmatch(value):
        return False
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return False  # e.g. February 30th: pydantic words the error


def plain_item(raw: Any) -> LoggedInteractionIn | None:
    """RAW (parsed JSON) as a valid item if it has the everyday shape, else None.

    Accepts only what ITEM_ADAPTER accepts, and returns what it would return (the time and
    float fields converted in RAW itself), except that UUIDs stay canonical text; feedbacks
    always go to pydantic."""
    if type(raw) is not dict:
        return None
    get = raw.get
    messages = get("messages")
    if (
        type(get("model_service")) is not str
        or type(get("completion")) is not str
        or type(messages) is not list
        or not messages
        or any(type(message) is not dict for message in messages)
    ):
        return None
    project = get("project")
    if project is not None and type(project) is not str:
        return None
    for name, limit in _OPTIONAL_TEXT_BOUNDED:
        value = get(name)
        if value is not None and (type(value) is not str or len(value) > limit):
            return None
    labels = get("labels")
    if labels is not None and (
        type(labels) is not dict or any(type(value) is not str for value in labels.values())
    ):
        return None
    feedbacks = get("feedbacks")
    if feedbacks is not None and (type(feedbacks) is not list or feedbacks):
        return None
    for name in ("prompt_tokens", "completion_tokens"):
        value = get(name)
        if value is not None and (type(value) is not int or not 0 <= value <= MAX_TOKENS):
            return None
    for name in ("latency_ms", "ttft_ms"):
        value = get(name)
        if value is not None and (type(value) not in (int, float) or value < 0):
            return None
    if not _plain_uuid(get("session_id")) or not _plain_uuid(get("completion_id")):
        return None
    created_at = _plain_time(get("created_at"))
    if created_at is False:
        return None
    # Valid: convert as pydantic would (UUIDs stay in their canonical text).
    if created_at is not None:
        raw["created_at"] = created_at
    for name in ("latency_ms", "ttft_ms"):
        if type(get(name)) is int:
            raw[name] = float(raw[name])
    return cast(LoggedInteractionIn, raw)


def validation_error(exc: ValidationError) -> Unprocessable:
    """Pydantic's first complaint, in the API's error shape (param = where it is)."""
    first = exc.errors()[0]
    param = ".".join(str(part) for part in first.get("loc", ())) or None
    message = f"{param}: {first.get('msg')}" if param else str(first.get("msg"))
    return Unprocessable(message, param=param)


def _catalog_ids(
    item: LoggedInteractionIn, principal: Principal, names: CatalogNames
) -> tuple[int, int]:
    project_key = item.get("project") or principal.project_key
    if project_key is None:
        raise BadRequest("`project` is required with an admin key", param="project")
    if not principal.is_admin and project_key != principal.project_key:
        raise NotFound(
            f"project {project_key} not found (this key belongs to project "
            f"{principal.project_key})",
            param="project",
        )
    project_id = names.projects.get(project_key)
    if project_id is None:
        raise NotFound(f"project {project_key} not found", param="project")
    model_key = item["model_service"]
    model_id = names.models.get(model_key)
    if model_id is None:
        raise NotFound(
            f"model {model_key} not found. Register it with "
            f"`interlog models add {model_key} --upstream URL`.",
            param="model_service",
        )
    return project_id, model_id


def build_record(
    item: LoggedInteractionIn,
    *,
    principal: Principal,
    names: CatalogNames,
    now: datetime | None = None,
) -> tuple[InteractionRecord, Sequence[dict[str, Any]]]:
    """Check one valid item against the key and the catalog; its record and feedback items.

    Items without `created_at` get NOW (default: the current time)."""
    project_id, model_id = _catalog_ids(item, principal, names)
    created_at = item.get("created_at") or now or utcnow()
    if created_at.tzinfo is None:
        created_at = created_at.replace(tzinfo=UTC)
    given_id = item.get("completion_id")
    completion_id = given_id or uuid7_text_at(created_at)
    messages = item["messages"]
    attachments = None
    for message in messages:
        if isinstance(message.get("content"), list):  # parts, maybe images: normalise
            prepared = prepare_messages(messages, multimodal=True)
            messages, attachments = prepared.logged, prepared.attachments
            break
    record: InteractionRecord = {
        "completion_id": completion_id,  # type: ignore[typeddict-item]
        "project_id": project_id,
        "session_id": item.get("session_id") or uuid7_text_at(created_at),  # type: ignore[typeddict-item]
        "created_at": created_at,  # type: ignore[typeddict-item]
        "model_id": model_id,
        "user_id": item.get("user"),
        "labels": item.get("labels") or {},
        "messages": messages,
        "completion": item["completion"],
        "finish_reason": item.get("finish_reason"),
        "prompt_tokens": item.get("prompt_tokens"),
        "completion_tokens": item.get("completion_tokens"),
        "latency_ms": item.get("latency_ms"),
        "ttft_ms": item.get("ttft_ms"),
        "status": "ok",
        "source": "OFFLINE",
    }
    if attachments:
        record["attachments"] = attachments
    if not item.get("feedbacks"):
        return record, ()
    feedbacks = []
    for number, feedback in enumerate(item.get("feedbacks") or ()):
        value: dict[str, Any] = {k: v for k, v in feedback.items() if v is not None}
        if value.get("id") is None and given_id is not None:
            # A re-imported item gets the same feedback ids again: no duplicate values.
            value["id"] = f"import:{completion_id}:{number}"
        feedbacks.append(value)
    return record, feedbacks


def check_label_limits(labels: Any, settings: Settings) -> None:
    """The label limits (INTERLOG_MAX_LABELS and key / value lengths): 400 for this item."""
    try:
        check_labels(labels, where="labels", settings=settings)
    except RequestRefused as refused:
        raise BadRequest(refused.message, param="labels", code=refused.code) from None


def prepare_item(
    raw: Any,
    *,
    principal: Principal,
    names: CatalogNames,
    now: datetime | None = None,
    settings: Settings | None = None,
) -> tuple[InteractionRecord, Sequence[dict[str, Any]]]:
    """Validate one parsed item and build its record: raises ApiError (422 for a bad item).

    With SETTINGS, the label limits apply to the item too (a bulk body's items one by one)."""
    item = plain_item(raw)
    if item is None:
        try:
            item = ITEM_ADAPTER.validate_python(raw)
        except ValidationError as exc:
            raise validation_error(exc) from None
    if settings is not None and item.get("labels"):
        check_label_limits(item["labels"], settings)
    return build_record(item, principal=principal, names=names, now=now)
