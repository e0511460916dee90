"""What an upstream's refusal becomes for the client: 429 stays 429 with its Retry-After, 503
stays 503, the upstream refusing Interlog's own credentials (401/403) is a 502 saying so (never
a 401 the client would read as its own key's fault); each call is logged as an error. The real
`openai` package as the client, a loopback upstream answering each status."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import openai
import pytest

from tests.servers import (
    LiveGateway,
    demo_upstream,
    fixed_upstream,
    live_gateway,
    logged_row,
    routed_model,
)

__all__ = ["demo_upstream", "live_gateway"]


@contextmanager
def model_answering(
    live: LiveGateway, status: int, headers: dict[str, str] | None = None
) -> Iterator[str]:
    """A model of project `proj` whose upstream answers STATUS (an OpenAI error body) with
    HEADERS; yields its `model` value once the gateway routes to it."""
    body = {"error": {"message": f"upstream says {status}", "type": "x", "code": status}}
    with fixed_upstream(body, status=status, headers=headers) as (url, _):
        yield routed_model(live, url, prefix=f"s{status}")


def _call(live: LiveGateway, model: str) -> Any:
    client = openai.OpenAI(base_url=live.api_url, api_key=live.api_key, max_retries=0)
    return client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": f"status check {uuid.uuid4()}"}]
    )


def test_upstream_429_is_429_with_its_retry_after(live_gateway: LiveGateway) -> None:
    limited = model_answering(live_gateway, 429, {"Retry-After": "7"})
    with limited as model, pytest.raises(openai.RateLimitError) as refused:
        _call(live_gateway, model)
    assert refused.value.status_code == 429
    assert refused.value.response.headers["retry-after"] == "7"
    error = refused.value.response.json()["error"]
    assert error["code"] == "upstream_rate_limited"
    assert "rate limiting (429): upstream says 429" in error["message"]
    row = logged_row(live_gateway.database_url, "error", "rate limiting (429)")
    assert row is not None and row.status == "error"


def test_openai_retries_after_the_upstream_retry_after(live_gateway: LiveGateway) -> None:
    """openai's own back-off reads the Retry-After passed on (it waited 1 s between tries)."""
    with model_answering(live_gateway, 429, {"Retry-After": "1"}) as model:
        client = openai.OpenAI(
            base_url=live_gateway.api_url, api_key=live_gateway.api_key, max_retries=1
        )
        started = time.monotonic()
        with pytest.raises(openai.RateLimitError):
            client.chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}])
        assert time.monotonic() - started >= 0.9


def test_upstream_503_is_503(live_gateway: LiveGateway) -> None:
    unavailable = model_answering(
        live_gateway, 503, {"Retry-After": "Wed, 21 Oct 2099 07:28:00 GMT"}
    )
    with unavailable as model, pytest.raises(openai.InternalServerError) as refused:
        _call(live_gateway, model)
    assert refused.value.status_code == 503
    assert refused.value.response.headers["retry-after"] == "Wed, 21 Oct 2099 07:28:00 GMT"
    assert refused.value.response.json()["error"]["code"] == "upstream_unavailable"


@pytest.mark.parametrize("status", [401, 403])
def test_upstream_refusing_interlogs_credentials_is_502_saying_so(
    live_gateway: LiveGateway, status: int
) -> None:
    with (
        model_answering(live_gateway, status) as model,
        pytest.raises(openai.APIStatusError) as refused,
    ):
        _call(live_gateway, model)
    client_fault = openai.AuthenticationError | openai.PermissionDeniedError
    assert not isinstance(refused.value, client_fault)
    assert refused.value.status_code == 502
    error = refused.value.response.json()["error"]
    assert error["code"] == "upstream_auth_failed"
    assert f"refused Interlog's credentials ({status})" in error["message"]
    assert "api-key-env" in error["message"]


def test_a_retry_after_that_is_not_one_is_not_passed_on(live_gateway: LiveGateway) -> None:
    odd = model_answering(live_gateway, 429, {"Retry-After": "soon; <script>"})
    with odd as model, pytest.raises(openai.RateLimitError) as refused:
        _call(live_gateway, model)
    assert "retry-after" not in refused.value.response.headers
