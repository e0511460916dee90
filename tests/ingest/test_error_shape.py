"""Every error path of the REST surface answers {"error": {"message", "type", "param", "code"}}."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from store.keys import create_api_key
from tests.ingest.admin_harness import ADMIN_KEY, AdminApp, start_app
from tests.interaction_seeds import log_interaction, seed_project

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


class ErrorCase(NamedTuple):
    method: str
    path: str
    status: int
    code: str
    json: Any = None
    content: bytes | None = None
    headers: dict[str, str] | None = None
    as_project: bool = False


CASES = {
    "missing key": ErrorCase("GET", "/api/v1/metrics", 401, "invalid_api_key", headers={}),
    "malformed header": ErrorCase(
        "GET", "/api/v1/metrics", 401, "invalid_api_key", headers={"Authorization": "Basic x"}
    ),
    "unknown key": ErrorCase(
        "GET", "/api/v1/metrics", 401, "invalid_api_key",
        headers={"Authorization": "Bearer il_12345678_nope"},
    ),
    "project key on admin API": ErrorCase(
        "GET", "/api/v1/admin/projects", 403, "forbidden", as_project=True
    ),
    "other project's data": ErrorCase(
        "GET", "/api/v1/metrics?project=other", 404, "not_found", as_project=True
    ),
    "unknown project": ErrorCase("GET", "/api/v1/admin/projects/nope", 404, "not_found"),
    "unknown route": ErrorCase("GET", "/api/v1/nothing-here", 404, "not_found"),
    "wrong method": ErrorCase("PUT", "/api/v1/status", 405, "bad_request"),
    "duplicate": ErrorCase("POST", "/api/v1/admin/projects", 409, "already_exists",
                           json={"key": "shape"}),
    "project not empty": ErrorCase("DELETE", "/api/v1/admin/projects/shape", 409,
                                   "project_not_empty"),
    "store refuses": ErrorCase(
        "POST", "/api/v1/admin/abtests", 400, "bad_request",
        json={"project": "shape", "key": "t", "variants": [{"model": "m1"}, {"model": "zz"}]},
    ),
    "schema violation": ErrorCase("POST", "/api/v1/admin/models", 422, "validation_error",
                                  json={"key": "x"}),
    "malformed JSON": ErrorCase("POST", "/api/v1/admin/projects", 422, "validation_error",
                                content=b"{not json", headers={**ADMIN,
                                "content-type": "application/json"}),
    "invalid UTF-8": ErrorCase("POST", "/api/v1/admin/projects", 400, "invalid_utf8",
                               content=b'{"key": "\xc3\x28"}'),
    "NUL character": ErrorCase("POST", "/api/v1/admin/projects", 400, "null_character",
                               json={"key": "a\u0000"}),
    "lone surrogate": ErrorCase("POST", "/api/v1/admin/projects", 400, "invalid_unicode",
                                content=b'{"key": "\\udc00"}'),
    "too deep": ErrorCase("POST", "/api/v1/admin/projects", 400, "json_too_deep",
                          content=b"[" * 100 + b"]" * 100),
    "too many labels": ErrorCase(
        "POST", "/api/v1/interactions", 400, "too_many_labels",
        json={"labels": {str(i): "v" for i in range(100)}},
    ),
    "label too long": ErrorCase(
        "POST", "/api/v1/chat/completions", 400, "label_too_long",
        json={"model": "shape", "messages": [], "metadata": {"k": "v" * 5000}},
    ),
    "body too large": ErrorCase("POST", "/api/v1/admin/projects", 413, "request_too_large",
                                content=b" " * 70_000),
    "NUL in path": ErrorCase("GET", "/api/v1/admin/projects/a%00", 400, "null_character"),
    "upstream unreachable": ErrorCase(
        "POST", "/api/v1/chat/completions", 502, "upstream_error",
        json={"model": "shape", "messages": [{"role": "user", "content": "hi"}]},
    ),
    "no default model": ErrorCase(
        "POST", "/api/v1/chat/completions", 404, "not_found",
        json={"model": "other", "messages": [{"role": "user", "content": "hi"}]},
    ),
    "bad completion id": ErrorCase("GET", "/api/v1/interactions/not-a-uuid", 404, "not_found"),
    "metric value out of range": ErrorCase(
        "POST", "/api/v1/interactions", 422, "value_out_of_range",
        json={"model_service": "m1", "project": "shape", "completion": "a",
              "messages": [{"role": "user", "content": "hi"}],
              "feedbacks": [{"metric": "quality", "value": 1e13}]},
    ),
}  # fmt: skip


@pytest.fixture(scope="module")
def api(_sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdminApp]:
    for app in start_app(
        tmp_path_factory.mktemp("error-shape"), _sqlite_template, max_body_bytes=65_536,
        upstream_connect_timeout=0.5,
    ):  # fmt: skip
        project = seed_project(app.engine, "shape", models=("m1",))
        seed_project(app.engine, "other", models=("m2",))
        app.http.patch("/api/v1/admin/projects/shape", json={"default_model": "m1"},
                       headers=ADMIN)  # fmt: skip
        log_interaction(app.engine, project)
        yield app


@pytest.mark.parametrize("name", list(CASES))
def test_every_error_has_the_one_shape(api: AdminApp, name: str) -> None:
    case = CASES[name]
    headers = ADMIN if case.headers is None else case.headers
    if case.as_project:
        secret = create_api_key(api.engine, project_key="shape").secret
        headers = {"Authorization": f"Bearer {secret}"}
    response = api.http.request(
        case.method, case.path, json=case.json, content=case.content, headers=headers
    )
    assert response.status_code == case.status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["code"] == case.code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert isinstance(body["error"]["type"], str)
