"""One rule for request bodies: every POST, PUT and PATCH under /api/v1 takes a JSON body
whatever its Content-Type says, as chat completions always have.

`curl -d '{...}'` (the README's own examples) sends `application/x-www-form-urlencoded`, and
FastAPI parses a body as JSON only without a Content-Type or with a JSON one: the feedback,
comparison and metric routes answered 422 "Input should be a valid dictionary" to a valid JSON
body. Here such a request's Content-Type is read as `application/json` before FastAPI sees it; a
body that is not JSON then gets the usual 422 naming the JSON error. GraphQL (/api/graphql)
keeps its own content negotiation.
"""

from __future__ import annotations

from starlette.types import Scope

API_PREFIX = "/api/v1/"
_METHODS = frozenset({"POST", "PUT", "PATCH"})
_JSON = b"application/json"


def is_json_content_type(value: bytes) -> bool:
    """application/json, or any application/*+json (parameters such as charset allowed)."""
    media = value.split(b";", 1)[0].strip().lower()
    return media == _JSON or (media.startswith(b"application/") and media.endswith(b"+json"))


def read_body_as_json(scope: Scope) -> None:
    """Make an API request's body JSON to FastAPI, whatever Content-Type it was sent with."""
    if scope["type"] != "http" or scope["method"] not in _METHODS:
        return
    if not scope["path"].startswith(API_PREFIX):
        return
    headers = scope["headers"]
    for name, value in headers:
        if name == b"content-type" and not is_json_content_type(value):
            break
    else:  # none (FastAPI reads JSON then), or a JSON one
        return
    scope["headers"] = [
        (name, _JSON if name == b"content-type" else value) for name, value in headers
    ]
