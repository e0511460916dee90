"""The chat completions endpoint as raw ASGI, dispatched before FastAPI's own stack.

Every completion used to pass FastAPI's telemetry check, Starlette's error middleware, the
router (matching each route in turn), FastAPI's request wrapper, dependency solving and an
AsyncExitStack before reaching the handler: about a fifth of the gateway's CPU per request
under load (bench/profile.py). Chat requests now go straight from the limits middleware
through the capture middleware to `ChatEndpoint`, which calls the same `ingest.chat.run_chat`
as the documented FastAPI route.
Everything else (`GET` on the chat path included, which answers 405) goes to FastAPI.

    InterlogApp (ingest/app.py) -> POST chat path -> Limits -> Capture -> ChatEndpoint
                                -> anything else  -> FastAPI (with LimitsMiddleware in its stack)
"""

from __future__ import annotations

import logging

import orjson
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from ingest.chat import ChatResult, run_chat
from ingest.chat_headers import ChatHeaders
from ingest.errors import error_body

log = logging.getLogger("interlog.chat")

#: Paths answered by ChatEndpoint (POST only).
CHAT_ENDPOINT_PATHS = frozenset({"/api/v1/chat/completions"})


async def _read_body(receive: Receive) -> bytes:
    message = await receive()
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        return body  # the limits middleware hands the checked body over in one message
    chunks = [body]
    while message.get("more_body", False):
        message = await receive()
        chunks.append(message.get("body", b""))
    return b"".join(chunks)


def _internal_error() -> ChatResult:
    body = error_body("internal server error", "server_error", "internal_error")
    return ChatResult(500, orjson.dumps(body))


class ChatEndpoint:
    """POST /api/v1/chat/completions without a framework in between."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            result = await run_chat(
                scope["app"].state,
                await _read_body(receive),
                headers=ChatHeaders.of_scope(scope["headers"]),
                scope_state=scope.setdefault("state", {}),
            )
        except Exception:
            log.exception("chat completion failed")
            result = _internal_error()
        if result.stream is not None:
            response = StreamingResponse(
                result.stream, media_type=result.media_type, headers=result.headers
            )
            await response(scope, receive, send)
            return
        headers = [
            (b"content-type", result.media_type.encode()),
            (b"content-length", str(len(result.body)).encode()),
        ]
        headers += [(k.lower().encode(), v.encode()) for k, v in result.headers.items()]
        await send({"type": "http.response.start", "status": result.status, "headers": headers})
        await send({"type": "http.response.body", "body": result.body})


def is_chat_request(scope: Scope) -> bool:
    """A POST to the chat completions path (lifespan and every other request go to FastAPI)."""
    return (
        scope["type"] == "http"
        and scope["path"] in CHAT_ENDPOINT_PATHS
        and scope["method"] == "POST"
    )
