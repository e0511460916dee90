"""The chat completions request: one model for the Adaptive and the OpenAI dialects.

Adaptive clients send `labels`, `session_id`, `store`, flat image parts and `model` = `project`
or `project/model`; OpenAI clients send `metadata`, nested image parts and `project/model`.
Unknown fields are kept (`extra="allow"`) and passed to the upstream, except the Interlog-only
fields in INTERLOG_FIELDS.
"""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool

#: Fields Interlog consumes itself; they never reach the upstream. `stream_options` is rebuilt.
INTERLOG_FIELDS = frozenset(
    {
        "model",
        "messages",
        "labels",
        "metadata",
        "session_id",
        "store",
        "stream_options",
        # Adaptive-only fields without an OpenAI meaning.
        "system_prompt_args",
        "tags",
        "use_tools",
        "max_ttft_ms",
        "constrained_decoding",
    }
)


class ChatMessage(BaseModel):
    """A message; `content` is a string or a list of parts (checked in ingest.vision)."""

    model_config = ConfigDict(extra="allow")

    role: str
    content: str | list[dict[str, Any]] | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: StrictBool | None = None


class ChatRequest(BaseModel):
    """A chat completion request in either dialect."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1, description='"project" or "project/model"')
    messages: list[ChatMessage] = Field(min_length=1)
    stream: StrictBool = False  # "yes" or 1 is a 422, not a stream taken for JSON
    stream_options: StreamOptions | None = None
    session_id: uuid.UUID | None = None
    user: str | None = Field(default=None, max_length=256)
    labels: dict[str, str] | None = None
    metadata: dict[str, str] | None = None
    store: bool | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = Field(default=None, ge=0)
    stop: str | list[str] | None = None
    n: int | None = Field(default=None, ge=1, le=16)

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

    def merged_labels(self) -> dict[str, str]:
        """`metadata` (OpenAI) and `labels` (Adaptive) as one map; `labels` wins a clash."""
        return {**(self.metadata or {}), **(self.labels or {})}


def upstream_params(raw: dict[str, Any]) -> dict[str, Any]:
    """The request's parameters that go upstream as they are (sampling, tools, seed, ...)."""
    return {
        key: value for key, value in raw.items() if key not in INTERLOG_FIELDS and value is not None
    }
