"""The gateway's hand-off to the logging step: what was decided about one chat request.

The gateway stores a ChatContext at `request.state.chat` (that is, `scope["state"]["chat"]`)
before it starts answering. The capture middleware reads it while it tees the response stream,
and turns context + assembled response into one interaction record per choice.
"""

from __future__ import annotations

import functools
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from store.interactions import AttachmentRecord
from store.types import utcnow

CHAT_CONTEXT_KEY = "chat"
#: Request parameters never logged, whatever the gateway passes (defence in depth for secrets).
SECRET_PARAMS = frozenset({"api_key", "authorization", "headers", "extra_headers"})


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
    #: A completion id made while the upstream computes, for the answer's first choice.
    first_completion_id: str | None = None
    _record_base: dict[str, Any] | None = field(default=None, repr=False, compare=False)

    @functools.cached_property
    def session_text(self) -> str:
        """`session_id` in canonical text (answers and records each need it)."""
        return str(self.session_id)

    def record_base(self) -> dict[str, Any]:
        """The interaction record's fields known before the answer (computed once).

        The gateway calls this while the upstream computes, so the capture step, which runs
        before the response's last byte goes out, only adds what the answer brought."""
        base = self._record_base
        if base is None:
            params = {k: v for k, v in self.params.items() if k.lower() not in SECRET_PARAMS}
            base = self._record_base = {
                "project_id": self.project_id,
                "session_id": self.session_text,
                "created_at": self.created_at.isoformat(),
                "request_id": self.request_id,
                "model_id": self.model_id,
                "ab_test_id": self.ab_test_id,
                "ab_variant": self.ab_variant,
                "user_id": self.user_id,
                "labels": dict(self.labels),
                "messages": self.messages,
                "params": params,
                "source": "LIVE",
            }
        return base
