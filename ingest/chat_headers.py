"""The request headers a chat completion reads: the key, Accept, and labels and session from
headers, for clients that cannot add fields to the body.

LangChain's `ChatOpenAI(model_kwargs={"metadata": ...})` and `litellm.completion(metadata=...)`
keep `metadata` for themselves and never send it, so those interactions were stored without
labels; both can send headers (`default_headers=`, `extra_headers=`):

- `X-Interlog-Labels: {"team": "a"}`: a JSON object of strings, merged under the body's labels
  and metadata (the body wins a clash), within the same limits (ingest/limits.py).
- `X-Interlog-Session-Id: <UUID>`: the session, when the body has no `session_id`.

A malformed header is a 400 naming it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import orjson

from ingest.errors import BadRequest
from ingest.limits import RequestRefused, check_labels
from store.settings import Settings

LABELS_HEADER = "X-Interlog-Labels"
SESSION_HEADER = "X-Interlog-Session-Id"
_LABELS = LABELS_HEADER.lower().encode()
_SESSION = SESSION_HEADER.lower().encode()


@dataclass(slots=True)
class ChatHeaders:
    """The header values a chat completion reads (latin-1, as HTTP headers are)."""

    authorization: str | None = None
    accept: str = ""
    labels: str | None = None
    session: str | None = None

    @classmethod
    def of_scope(cls, headers: list[tuple[bytes, bytes]]) -> ChatHeaders:
        """From an ASGI scope's raw headers (on every completion: a plain loop)."""
        found = cls()
        for name, value in headers:
            if name == b"authorization":
                found.authorization = value.decode("latin-1")
            elif name == b"accept":
                found.accept = value.decode("latin-1")
            elif name == _LABELS:
                found.labels = value.decode("latin-1")
            elif name == _SESSION:
                found.session = value.decode("latin-1")
        return found

    def with_header_labels_and_session(self, raw: dict[str, Any], settings: Settings) -> None:
        """Fold the labels and session headers into the parsed request body RAW: header labels
        go under `metadata` (so `metadata`, then `labels`, win a clash); the session header
        counts when the body has no `session_id`."""
        if self.labels is not None:
            labels = _header_labels(self.labels, settings)
            metadata = raw.get("metadata")
            if metadata is None or isinstance(metadata, dict):  # else: the body's 422
                raw["metadata"] = {**labels, **(metadata or {})}
                body_labels = raw.get("labels")
                merged = {
                    **raw["metadata"],
                    **(body_labels if isinstance(body_labels, dict) else {}),
                }
                _check(merged, "labels", settings)  # stored as one map
        if self.session is not None and raw.get("session_id") is None:
            try:
                raw["session_id"] = str(uuid.UUID(self.session.strip()))
            except ValueError:
                raise BadRequest(
                    f"{SESSION_HEADER} must be a UUID, got {self.session[:64]!r}",
                    param=SESSION_HEADER,
                ) from None


def _header_labels(text: str, settings: Settings) -> dict[str, str]:
    try:
        labels = orjson.loads(text.encode("latin-1"))
    except (orjson.JSONDecodeError, UnicodeEncodeError):
        labels = None
    if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
        raise BadRequest(
            f'{LABELS_HEADER} must be a JSON object of strings, e.g. {{"team": "a"}}; '
            f"got {text[:64]!r}",
            param=LABELS_HEADER,
        )
    _check(labels, LABELS_HEADER, settings)
    return labels


def _check(labels: dict[str, Any], where: str, settings: Settings) -> None:
    try:
        check_labels(labels, where=where, settings=settings)
    except RequestRefused as refused:
        raise BadRequest(refused.message, param=refused.param, code=refused.code) from None
