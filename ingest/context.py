"""The gateway's hand-off to the logging step: what was decided about one chat request.

The gateway stores a ChatContext at `request.state.chat` (that is, `scope["state"]["chat"]`)
before it starts answering. The capture middleware reads it while it tees the response stream,
and turns context + assembled response into one interaction record per choice.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from store.interactions import AttachmentRecord
from store.types import utcnow

CHAT_CONTEXT_KEY = "chat"


@dataclass
class ChatContext:
    """Routing decision and request facts of one chat completion (never any secret)."""

    request_id: str
    project_id: int
    project_key: str
    model_id: int | None
    model_key: str
    session_id: uuid.UUID
    stream: bool
    store: bool = True
    ab_test_id: int | None = None
    ab_variant: str | None = None
    replica: str | None = None
    user_id: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    #: Request messages as logged: images replaced by `attachment://sha256/<hex>` references.
    messages: list[dict[str, Any]] = field(default_factory=list)
    #: Sampling and other request parameters that were passed upstream (no secrets).
    params: dict[str, Any] = field(default_factory=dict)
    attachments: list[AttachmentRecord] = field(default_factory=list)
    #: Token usage the upstream reported (set by the gateway once known, also when the client
    #: did not ask for a usage chunk; keys prompt_tokens, completion_tokens, total_tokens).
    usage: dict[str, int] | None = None
    #: The JSON answer of a non-streamed completion, as sent (the capture step reads it).
    answer: dict[str, Any] | None = None
    created_at: datetime = field(default_factory=utcnow)
    started: float = field(default_factory=time.perf_counter)
