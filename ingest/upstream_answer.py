"""Whether an upstream's answer matches the chat schema the gateway relies on, and what is wrong
with it when it does not.

The gateway rewrites every answer (ingest/chat.py) and logs it (ingest/capture.py). An upstream
that answered `choices` as a string, a `[null]` choice, a token count that is not an integer or
one of 1e20 made that rewrite fail: a 500 "internal server error" for the client and the log, or
a stream cut without its error event. Each is now named (a 502 `upstream_bad_answer`, or the
stream's `data: {"error"}` event), and logged with that message.
"""

from __future__ import annotations

from typing import Any

#: Largest token count taken from an upstream, as on ingest (ingest/logged_items.MAX_TOKENS):
#: the store's integer columns hold no more.
MAX_TOKENS = 2**31 - 1
_TOKEN_FIELDS = ("prompt_tokens", "completion_tokens", "total_tokens")


def completion_problem(data: dict[str, Any]) -> str | None:
    """What in a whole chat completion breaks the schema, or None."""
    return _choices_problem(data.get("choices"), "message") or usage_problem(data.get("usage"))


def chunk_problem(chunk: dict[str, Any]) -> str | None:
    """What in one stream chunk breaks the schema, or None."""
    return _choices_problem(chunk.get("choices"), "delta") or usage_problem(chunk.get("usage"))


def usage_problem(usage: Any) -> str | None:
    """What is wrong with a `usage` member, or None (absent and null are fine)."""
    if usage is None:
        return None
    if not isinstance(usage, dict):
        return f"usage is {_kind(usage)}, not an object"
    for name in _TOKEN_FIELDS:
        value = usage.get(name)
        if value is None:
            continue
        if type(value) is not int:
            return f"usage.{name} is {_kind(value)}, not an integer"
        if not 0 <= value <= MAX_TOKENS:
            return f"usage.{name} is {value}, outside 0..{MAX_TOKENS}"
    return None


def _choices_problem(choices: Any, part: str) -> str | None:
    if choices is None:
        return None
    if not isinstance(choices, list):
        return f"choices is {_kind(choices)}, not a list"
    for position, choice in enumerate(choices):
        where = f"choices[{position}]"
        if not isinstance(choice, dict):
            return f"{where} is {_kind(choice)}, not an object"
        index = choice.get("index")
        if index is not None and (type(index) is not int or not 0 <= index < 1024):
            return f"{where}.index is {_kind(index)}, not a small integer"
        reason = choice.get("finish_reason")
        if reason is not None and not isinstance(reason, str):
            return f"{where}.finish_reason is {_kind(reason)}, not a string"
        message = choice.get(part)
        if message is None:
            continue
        if not isinstance(message, dict):
            return f"{where}.{part} is {_kind(message)}, not an object"
        content = message.get("content")
        if content is not None and not isinstance(content, str | list):
            return f"{where}.{part}.content is {_kind(content)}, not a string"
        role = message.get("role")
        if role is not None and not isinstance(role, str):
            return f"{where}.{part}.role is {_kind(role)}, not a string"
    return None


def _kind(value: Any) -> str:
    """VALUE's JSON kind, with a short sample."""
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string"}
    name = names.get(type(value), "null" if value is None else f"a {type(value).__name__}")
    if isinstance(value, list):
        name = "a list"
    elif isinstance(value, dict):
        name = "an object"
    sample = repr(value)
    return f"{name} ({sample[:40]}{'...' if len(sample) > 40 else ''})"
