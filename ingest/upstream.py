"""The upstream pool: one HTTP client per process, replica choice, timeouts and failures.

Measured through a FastAPI proxy on a 2-core box: httpx.AsyncClient ~250 req/s, an aiohttp
session ~2,000 req/s. With aiohttp, its client still took about a third of the gateway's CPU
per completion (bench/profile.py), so the client is now our own small keep-alive HTTP/1.1
client over httptools (ingest/upstream_http.py), which does only what this pool needs.

A request with a client session_id always goes to the same replica of a model (rendezvous
hashing, so the upstream's KV cache is reused across turns, and only 1/N of sessions move when
a replica is added); other requests are spread round-robin. A replica that refuses the
connection (or cannot be reached in the connect timeout) is skipped before any byte is sent.
The API key comes from the environment variable named on the model; it is never logged/stored.
That name is checked against the operator's rule (store/upstream_keys.py) on every call, not only
when it was set: a model naming a variable the rule does not allow (stored before the rule, or
before the operator narrowed it) gets a 502 and its upstream is never called.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import re
import uuid
from dataclasses import dataclass
from typing import Any

import orjson

from ingest.errors import (
    ApiError,
    BadRequest,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from ingest.routing import UpstreamModel, unit_hash
from ingest.upstream_http import ConnectError, HttpPool, PendingPost, UpstreamResponse
from store.settings import Settings
from store.upstream_keys import api_key_env_problem

log = logging.getLogger("interlog.upstream")

_ERROR_BODY_LIMIT = 64 * 1024
#: An IMF-fixdate (RFC 9110), e.g. "Wed, 21 Oct 2026 07:28:00 GMT".
_HTTP_DATE = re.compile(r"[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT\Z")


@dataclass
class UpstreamCall:
    """An upstream response whose headers have arrived (the body is still to be read)."""

    response: UpstreamResponse
    replica: str


def replica_order(model: UpstreamModel, session_id: uuid.UUID | None, spread: int) -> list[str]:
    """Replicas in the order to try: by rendezvous hash for a session, else rotated."""
    urls = list(model.urls)
    if len(urls) < 2:
        return urls
    if session_id is not None:
        key = str(session_id)
        return sorted(urls, key=lambda url: unit_hash(key, url), reverse=True)
    start = spread % len(urls)
    return urls[start:] + urls[:start]


def _error_message(body: bytes) -> str:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body.decode("utf-8", "replace").strip()[:500] or "(empty body)"
    if isinstance(data, dict):
        error = data.get("error", data.get("detail", data))
        if isinstance(error, dict) and "message" in error:
            return str(error["message"])[:500]
        return str(error)[:500]
    return str(data)[:500]


async def failure_of(call: UpstreamCall, model: UpstreamModel) -> ApiError:
    """The error to answer for a non-200 upstream response (its body is read and released)."""
    status = call.response.status
    try:
        body = await call.response.read_limited(_ERROR_BODY_LIMIT)
    except OSError:  # TimeoutError included
        body = b""
    finally:
        call.response.release()
    message = _error_message(body)
    if status in (400, 422):
        return BadRequest(f"the upstream of model {model.key} rejected the request: {message}")
    if status in (408, 504):
        return UpstreamTimeout(f"the upstream of model {model.key} timed out ({status}): {message}")
    retry = _retry_after(call.response.headers.get("retry-after"))
    if status == 429:
        return UpstreamRateLimited(
            f"the upstream of model {model.key} is rate limiting (429): {message}", headers=retry
        )
    if status == 503:
        return UpstreamUnavailable(
            f"the upstream of model {model.key} is unavailable (503): {message}", headers=retry
        )
    if status in (401, 403):  # Interlog's credentials, not the client's: never a 401 here
        return UpstreamError(
            f"the upstream of model {model.key} refused Interlog's credentials ({status}): "
            f"{message}; check the upstream key in the variable the model's api_key_env names "
            f"(`interlog models update {model.key} --api-key-env NAME`)",
            code="upstream_auth_failed",
        )
    return UpstreamError(f"the upstream of model {model.key} answered {status}: {message}")


def _retry_after(value: str | None) -> dict[str, str]:
    """The upstream's Retry-After, to pass on: delay-seconds or an IMF-fixdate (nothing else)."""
    if value is None:
        return {}
    value = value.strip()
    seconds = value.isascii() and value.isdigit() and len(value) <= 10
    if not seconds and not _HTTP_DATE.match(value):
        return {}
    return {"Retry-After": value}


class UpstreamPool:
    """The process's one HTTP client for upstream model servers."""

    def __init__(self, settings: Settings) -> None:
        self.connect_timeout = settings.upstream_connect_timeout
        self.timeout = settings.upstream_timeout
        self.settings = settings
        self._key_env_problems: dict[str, str | None] = {}  # api_key_env -> why refused
        self._http: HttpPool | None = None
        self._spread = itertools.count()

    async def start(self) -> None:
        self._http = HttpPool()

    async def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    def _key_env_problem(self, name: str) -> str | None:
        if name not in self._key_env_problems:
            if len(self._key_env_problems) >= 1024:
                self._key_env_problems.clear()
            problem = api_key_env_problem(name, self.settings)
            self._key_env_problems[name] = problem
            if problem is not None:
                log.error("upstream: refusing to send %s upstream: %s", name, problem)
        return self._key_env_problems[name]

    def _headers(self, model: UpstreamModel) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if model.api_key_env:
            if self._key_env_problem(model.api_key_env) is not None:
                # The client (maybe a project key) is told what fixes it, not the operator's rule.
                raise UpstreamError(
                    f"model {model.key} names an upstream API key variable this gateway does not "
                    "allow (INTERLOG_UPSTREAM_KEY_ENV_PATTERN, INTERLOG_UPSTREAM_KEY_ENV_NAMES); "
                    f"an admin must change it: `interlog models update {model.key} "
                    "--api-key-env NAME`",
                    code="upstream_key_not_allowed",
                )
            secret = os.environ.get(model.api_key_env)
            if secret:
                headers["Authorization"] = f"Bearer {secret}"
        return headers

    def send(
        self, model: UpstreamModel, payload: dict[str, Any], *, session_id: uuid.UUID | None
    ) -> PendingCall:
        """Start the request: written at once on an idle connection to the first replica, so
        the gateway's own bookkeeping runs while the upstream computes; await
        `PendingCall.wait()` for the response head."""
        call = PendingCall(self._http, model, orjson.dumps(payload), self._headers(model))
        call.timeout = model.timeout or self.timeout
        call.connect_timeout = model.connect_timeout or self.connect_timeout
        call.replicas = replica_order(model, session_id, next(self._spread))
        if call.replicas:
            try:
                call.first = call.post(call.replicas[0])
            except Exception as exc:  # raised by wait(), once the context is in place
                call.error = exc
        return call


class PendingCall:
    """An upstream request on its way (UpstreamPool.send): `wait()` gives the UpstreamCall
    from the first replica that accepts the connection; `cancel()` abandons it."""

    def __init__(
        self, http: HttpPool | None, model: UpstreamModel, body: bytes, headers: dict[str, str]
    ) -> None:
        self.http = http
        self.model = model
        self.body = body
        self.headers = headers
        self.timeout: float | None = None
        self.connect_timeout: float | None = None
        self.replicas: list[str] = []
        self.first: PendingPost | None = None
        self.error: Exception | None = None

    def post(self, replica: str) -> PendingPost:
        if self.http is None:
            raise RuntimeError("the upstream pool is not started (app lifespan)")
        return self.http.request(
            f"{replica}/chat/completions",
            self.body,
            self.headers,
            timeout=self.timeout,
            connect_timeout=self.connect_timeout,
        )

    async def wait(self) -> UpstreamCall:
        if self.error is not None:
            raise self.error
        model = self.model
        tried: list[str] = []
        for position, replica in enumerate(self.replicas):
            pending = self.first if position == 0 and self.first else self.post(replica)
            try:
                response = await pending.response()
            except ConnectError:
                # Nothing was sent: the next replica may take it.
                tried.append(replica)
                continue
            except TimeoutError as exc:
                raise UpstreamTimeout(
                    f"model {model.key} did not answer within {self.timeout} s"
                ) from exc
            except OSError as exc:
                raise UpstreamError(f"model {model.key}: upstream failed: {exc}") from exc
            return UpstreamCall(response=response, replica=replica)
        raise UpstreamError(
            f"no replica of model {model.key} accepted the connection (tried "
            f"{', '.join(tried)}); is the model server running?"
        )

    def cancel(self) -> None:
        """Abandon a started request that will not be awaited (its connection is closed)."""
        if self.first is not None:
            self.first.cancel()


async def cancel_call(call: UpstreamCall) -> None:
    """Drop an upstream response early (the client went away): close its connection."""
    call.response.close()
    await asyncio.sleep(0)
