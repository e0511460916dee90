"""POST /api/v1/chat/completions: authenticate, route, call the upstream, answer both dialects.

The answer is the union of the Adaptive and OpenAI shapes (client-protocol §3.2/§3.3): every
choice and every stream chunk carries a new UUIDv7 `completion_id` and the `session_id`. The
request's facts go to the logging step as a ChatContext at `request.state.chat`, set before the
upstream's answer is awaited; this module logs nothing itself. The request goes upstream as soon
as it is checked and routed; the context is built while the upstream computes (at one client
the gateway would otherwise sit idle then).

Errors before the first byte of a stream: a client that accepts `text/event-stream` (the
adaptive-sdk; httpx_sse sends that Accept header) gets the error status with an SSE body: a
plain-text event with the message (the SDK prints it in its "Error with json in chunk" warning)
then `data: {"error": {...}}` (which makes the SDK raise). Other clients (the openai package,
curl) get the usual JSON error body with the status, which `openai` shows as
"Error code: 404 - <message>". Errors after the first byte end the stream with
`data: {"error": {...}}`, which `openai` raises as APIError.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import psycopg
from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError

from ingest.auth import authenticate_header, check_project_key
from ingest.chat_headers import ChatHeaders
from ingest.chat_schema import ChatRequest, upstream_params
from ingest.context import CHAT_CONTEXT_KEY, ChatContext
from ingest.errors import (
    ApiError,
    BadRequest,
    PayloadTooLarge,
    Unprocessable,
    UpstreamError,
    UpstreamTimeout,
    database_api_error,
)
from ingest.routing import Route
from ingest.upstream import UpstreamCall, UpstreamPool, failure_of
from ingest.upstream_answer import chunk_problem, completion_problem
from ingest.vision import PreparedMessages, prepare_messages
from store.ids import uuid4, uuid7_hex, uuid7_str

router = APIRouter(tags=["chat"])

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def _usage(data: Any) -> dict[str, int]:
    usage = data if isinstance(data, dict) else {}
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    total = int(usage.get("total_tokens") or prompt + completion)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": total}


def sse_event(payload: Any) -> bytes:
    """One SSE event, framed exactly `data: <json>\\n\\n` (the logging step parses this)."""
    return b"data: " + orjson.dumps(payload) + b"\n\n"


@dataclass
class ChatResult:
    """What to answer: a whole body (JSON, or an SSE error) or a stream of SSE events."""

    status: int
    body: bytes = b""
    media_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    stream: AsyncIterator[bytes] | None = None

    def to_response(self) -> Response:
        if self.stream is not None:
            return StreamingResponse(self.stream, media_type=self.media_type, headers=self.headers)
        return Response(
            self.body, status_code=self.status, media_type=self.media_type, headers=self.headers
        )


def error_answer(error: ApiError, *, stream: bool, wants_sse: bool) -> ChatResult:
    """An error before any byte was sent, in the form the client can show (module docstring)."""
    headers = {**error.headers}
    if error.status_code == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if stream and wants_sse:
        text = f"Interlog error {error.status_code} {error.code}: {error.message}"
        body = b"data: " + " ".join(text.splitlines()).encode() + b"\n\n" + sse_event(error.body())
        return ChatResult(error.status_code, body, "text/event-stream", headers)
    return ChatResult(error.status_code, orjson.dumps(error.body()), headers=headers)


def _validation_error(exc: ValidationError) -> Unprocessable:
    errors = exc.errors()
    first = errors[0]
    param = ".".join(str(part) for part in first.get("loc", ())) or None
    message = f"{param}: {first.get('msg')}" if param else str(first.get("msg"))
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problems)"
    return Unprocessable(message, param=param)


def _parse_body(body: bytes, limit: int) -> dict[str, Any]:
    if len(body) > limit:
        raise PayloadTooLarge(f"request body is larger than {limit} bytes")
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the request body is not valid JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise BadRequest("the request body must be a JSON object")
    return raw


def upstream_request(
    route: Route, chat: ChatRequest, raw: dict[str, Any]
) -> tuple[PreparedMessages, dict[str, Any], dict[str, Any]]:
    """The prepared messages, the payload for the upstream and the parameters to log."""
    prepared = prepare_messages(raw["messages"], multimodal=route.model.multimodal)
    payload = upstream_params(raw)
    payload["model"] = route.model.upstream_name
    if chat.stream:
        payload["stream"] = True
        payload["stream_options"] = {"include_usage": True}  # for the log, even if not asked
    params = dict(payload)
    payload["messages"] = prepared.upstream
    return prepared, payload, params


def build_context(
    request_id: str,
    route: Route,
    chat: ChatRequest,
    session_id: uuid.UUID,
    prepared: PreparedMessages,
    params: dict[str, Any],
) -> ChatContext:
    """The ChatContext for the logging step."""
    return ChatContext(
        request_id=request_id,
        project_id=route.project_id,
        project_key=route.project_key,
        model_id=route.model.id,
        model_key=route.model.key,
        session_id=session_id,
        stream=chat.stream,
        store=chat.store is not False,
        ab_test_id=route.ab_test_id,
        ab_variant=route.ab_variant,
        user_id=chat.user,
        labels=chat.merged_labels(),
        messages=prepared.logged,
        params=params,
        attachments=prepared.attachments,
    )


@router.post(
    "/api/v1/chat/completions",
    response_model=None,
    responses={
        200: {"description": "A chat completion, or an SSE stream of chunks when `stream`."},
        400: {"description": "Bad JSON, bad image, or the upstream rejected the request."},
        401: {"description": "Missing or invalid API key."},
        404: {"description": "Unknown project or model, or no default model."},
        413: {"description": "Request body too large."},
        422: {"description": "The body does not match the request schema."},
        502: {"description": "The upstream failed or no replica accepted the connection."},
        504: {"description": "The upstream timed out."},
    },
)
async def create_chat_completion(request: Request) -> Response:
    """Answer a chat completion (Adaptive or OpenAI dialect), streamed or not, and log it.

    Requests reach `run_chat` through ingest.chat_endpoint's raw ASGI path, before FastAPI's
    routing; this route documents the endpoint in the OpenAPI schema and serves the same way."""
    state: dict[str, Any] = request.scope.setdefault("state", {})
    result = await run_chat(
        request.app.state,
        await request.body(),
        headers=ChatHeaders.of_scope(request.scope["headers"]),
        scope_state=state,
    )
    return result.to_response()


async def run_chat(
    app_state: Any,
    body: bytes,
    *,
    headers: ChatHeaders,
    scope_state: dict[str, Any],
) -> ChatResult:
    """The whole chat completion: the ChatContext goes to `scope_state` for the capture step."""
    wants_sse = "text/event-stream" in headers.accept
    stream = False
    try:
        raw = _parse_body(body, app_state.settings.max_body_bytes)
        stream = raw.get("stream") is True
        principal = await authenticate_header(app_state, headers.authorization)
        headers.with_header_labels_and_session(raw, app_state.settings)
        try:
            chat = ChatRequest.model_validate(raw)
        except ValidationError as exc:
            raise _validation_error(exc) from exc
        project_key = chat.model.partition("/")[0]
        check_project_key(principal, project_key)
        session_id = chat.session_id or uuid4()
        route = await app_state.routing.route(chat.model, session_id)
        prepared, payload, params = upstream_request(route, chat, raw)
        pool: UpstreamPool = app_state.upstream
        pending = pool.send(route.model, payload, session_id=chat.session_id)
        try:
            # The request is on its way: the bookkeeping below runs while the upstream computes.
            request_id = "chatcmpl-" + uuid7_hex()
            context = build_context(request_id, route, chat, session_id, prepared, params)
            scope_state[CHAT_CONTEXT_KEY] = context
            if not stream:
                context.first_completion_id = uuid7_str()
            if context.store:
                context.record_base()  # the interaction record's request part, for capture
        except BaseException:
            pending.cancel()
            raise
        call = await pending.wait()
        context.replica = call.replica
        if call.response.status != 200:
            raise await failure_of(call, route.model)
        if stream:
            return ChatResult(
                200,
                media_type="text/event-stream",
                headers=SSE_HEADERS,
                stream=relay_stream(call, context, route.public_model, chat.include_usage),
            )
        data = await _read_completion(call, route)
        answer = build_completion(data, context, route.public_model)
        context.answer = answer
        return ChatResult(200, orjson.dumps(answer))
    except ApiError as error:
        return error_answer(error, stream=stream, wants_sse=wants_sse)
    except (DBAPIError, psycopg.Error, sqlite3.Error) as exc:
        # A key or route the store had to be asked for, and it is away: 503 with Retry-After.
        unavailable, retry_after = database_api_error(exc)
        refused = error_answer(unavailable, stream=stream, wants_sse=wants_sse)
        refused.headers.update(retry_after or {})
        return refused


async def _read_completion(call: UpstreamCall, route: Route) -> dict[str, Any]:
    try:
        body = await call.response.read()
    except TimeoutError as exc:
        raise UpstreamTimeout(f"model {route.model.key} did not answer in time") from exc
    except OSError as exc:
        raise UpstreamError(f"model {route.model.key}: upstream failed: {exc}") from exc
    finally:
        call.response.release()
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise UpstreamError(f"model {route.model.key}: the upstream's answer is not JSON") from exc
    if not isinstance(data, dict):
        raise UpstreamError(f"model {route.model.key}: the upstream's answer is not an object")
    if data.get("error") and not data.get("choices"):
        # Some servers (proxies, llama.cpp on overload) say 200 and carry an error: it was
        # logged as an ok interaction with an empty completion.
        raise UpstreamError(
            f"the upstream of model {route.model.key} answered 200 with an error: "
            f"{_error_text(data['error'])}"
        )
    problem = completion_problem(data)
    if problem is not None:
        raise UpstreamError(
            f"the upstream of model {route.model.key} answered a completion that does not "
            f"match the chat schema: {problem}",
            code="upstream_bad_answer",
        )
    return data


def _error_text(error: Any) -> str:
    """An upstream's `error` member as one short line."""
    text = error.get("message") if isinstance(error, dict) else None
    if not isinstance(text, str):
        text = orjson.dumps(error).decode() if not isinstance(error, str) else error
    return " ".join(text.split())[:300]


def _content(message: dict[str, Any]) -> Any:
    """A message's (or delta's) content for the client: null stays null beside tool calls
    (OpenAI's shape); otherwise a string, never null (the adaptive-sdk refuses a null content,
    client-protocol §3.2)."""
    content = message.get("content")
    if content is None and message.get("tool_calls"):
        return None
    return content or ""


def build_completion(data: dict[str, Any], context: ChatContext, model: str) -> dict[str, Any]:
    """The union of the Adaptive and OpenAI response shapes (protocol §3.2)."""
    choices = []
    first_id, context.first_completion_id = context.first_completion_id, None
    for position, choice in enumerate(data.get("choices") or ()):
        completion_id = first_id if position == 0 and first_id else uuid7_str()
        upstream_message = choice.get("message") or {}
        message = {
            **upstream_message,
            "id": completion_id,
            "role": upstream_message.get("role") or "assistant",
            "content": _content(upstream_message),
        }
        item = {
            "index": choice.get("index", position),
            "completion_id": completion_id,
            "model": model,
            "finish_reason": choice.get("finish_reason"),
            "message": message,
        }
        if choice.get("logprobs") is not None:
            item["logprobs"] = choice["logprobs"]
        choices.append(item)
    usage = _usage(data.get("usage"))
    context.usage = usage
    answer: dict[str, Any] = {
        "id": context.request_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "session_id": context.session_text,
        "choices": choices,
        "usage": usage,
    }
    if data.get("system_fingerprint"):
        answer["system_fingerprint"] = data["system_fingerprint"]
    return answer


class ChunkRewriter:
    """Turns upstream stream chunks into chunks both clients accept (protocol §3.3)."""

    def __init__(self, context: ChatContext, model: str, include_usage: bool) -> None:
        self.context = context
        self.include_usage = include_usage
        self.completion_ids: dict[int, str] = {}
        self.head = {
            "id": context.request_id,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "session_id": context.session_text,
        }
        self.model = model

    def rewrite(self, chunk: dict[str, Any]) -> dict[str, Any] | None:
        """The chunk to send, or None to send nothing (an unrequested usage chunk)."""
        choices = []
        for choice in chunk.get("choices") or ():
            index = choice.get("index", 0)
            completion_id = self.completion_ids.get(index)
            if completion_id is None:
                completion_id = self.completion_ids[index] = uuid7_str()
            delta = choice.get("delta") or {}
            choices.append(
                {
                    **choice,
                    "index": index,
                    "completion_id": completion_id,
                    "model": self.model,
                    "delta": {
                        **delta,
                        "id": completion_id,
                        "role": delta.get("role") or "assistant",
                        "content": _content(delta),
                    },
                }
            )
        usage = chunk.get("usage")
        out: dict[str, Any] = {**self.head, "choices": choices}
        if usage:
            self.context.usage = _usage(usage)
            if self.include_usage:
                out["usage"] = self.context.usage
        if not choices and "usage" not in out:
            return None
        return out


def _stream_error(message: str, code: str) -> bytes:
    """The end of a stream that went wrong: the error event, then `[DONE]`."""
    body = {"error": {"message": message, "type": "upstream_error", "param": None, "code": code}}
    return sse_event(body) + b"data: [DONE]\n\n"


async def relay_stream(
    call: UpstreamCall, context: ChatContext, model: str, include_usage: bool
) -> AsyncIterator[bytes]:
    """Forward the upstream's SSE stream chunk by chunk as it arrives (never buffered)."""
    rewriter = ChunkRewriter(context, model, include_usage)
    finished = False
    pending = b""
    data_lines: list[bytes] = []
    try:
        async for piece in call.response.iter_any():
            pending += piece
            *lines, pending = pending.split(b"\n")
            for line in lines:
                line = line.rstrip(b"\r")
                if line.startswith(b"data:"):
                    data_lines.append(line[5:].lstrip(b" "))
                    continue
                if line or not data_lines:
                    continue  # comments, event names, stray blank lines
                data, data_lines = b"\n".join(data_lines), []
                if data == b"[DONE]":
                    finished = True
                    yield b"data: [DONE]\n\n"
                    return
                event = _relay_event(rewriter, data, model)
                if event is not None:
                    yield event
                    if event.startswith(b'data: {"error"'):
                        finished = True
                        return
        finished = True
        yield b"data: [DONE]\n\n"
    except TimeoutError:
        finished = True
        yield _stream_error(f"model {context.model_key} timed out mid-stream", "upstream_timeout")
    except OSError as exc:
        finished = True
        yield _stream_error(
            f"model {context.model_key}: upstream failed mid-stream: {exc}", "upstream_error"
        )
    finally:
        if finished:
            call.response.release()
        else:  # the client went away: drop the upstream connection, which cancels its work
            call.response.close()


def _relay_event(rewriter: ChunkRewriter, data: bytes, model: str) -> bytes | None:
    try:
        chunk = orjson.loads(data)
    except orjson.JSONDecodeError:
        return _stream_error(
            f"model {model}: the upstream sent a chunk that is not JSON", "upstream_error"
        )
    if not isinstance(chunk, dict):
        return None
    if "error" in chunk:
        error = chunk["error"]
        detail = error.get("message") if isinstance(error, dict) else error
        return _stream_error(f"model {model}: upstream error: {detail}", "upstream_error")
    problem = chunk_problem(chunk)
    if problem is not None:
        return _stream_error(
            f"model {model}: the upstream sent a chunk that does not match the chat schema: "
            f"{problem}",
            "upstream_bad_answer",
        )
    out = rewriter.rewrite(chunk)
    return None if out is None else sse_event(out)
