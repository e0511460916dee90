"""Rendering one interaction as a conversation: roles, text, images, completion and its facts."""

from __future__ import annotations

import json
from typing import Any

import streamlit as st
from sqlalchemy import Engine

from store.images import attachment_hash, attachment_refs, image_url_of, load_images
from store.readback import InteractionView

ROLE_AVATARS = {"system": "⚙️", "user": "user", "assistant": "assistant", "tool": "🛠️"}


def _message_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return json.dumps(content, ensure_ascii=False)


def render_messages(engine: Engine, messages: list[dict[str, Any]]) -> None:
    """The prompt messages in order; images come from the attachment table by content hash."""
    images = load_images(engine, sha256s=attachment_refs(messages))
    for message in messages:
        role = str(message.get("role", "user"))
        with st.chat_message(role, avatar=ROLE_AVATARS.get(role)):
            answering = message.get("tool_call_id")
            st.caption(f"{role} · answers {answering}" if answering else role)
            content = message.get("content")
            calls = message.get("tool_calls")
            if calls:
                render_tool_calls(calls)
                if not content:
                    continue
            if not isinstance(content, list):
                st.markdown(_message_text(content) or "_(empty)_")
                continue
            for part in content:
                url = image_url_of(part)
                if url is None:
                    text = part.get("text") if isinstance(part, dict) else None
                    st.markdown(text if isinstance(text, str) else _message_text(part))
                    continue
                digest = attachment_hash(url)
                if digest is None:
                    st.image(url, width=320)
                elif digest in images:
                    st.image(images[digest].data, width=320, caption=f"sha256 {digest[:12]}…")
                else:
                    st.warning(f"Image {digest[:12]}… is not in the store.")


def render_tool_calls(calls: Any) -> None:
    """Each tool call: its name and id, and its arguments (pretty when they are JSON)."""
    for call in calls if isinstance(calls, list) else ():
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            st.code(_message_text(call), language="json")
            continue
        st.markdown(f"🛠️ calls **{function.get('name') or '?'}** · `{call.get('id') or ''}`")
        arguments = function.get("arguments")
        try:
            shown = json.dumps(json.loads(str(arguments)), ensure_ascii=False, indent=2)
        except (TypeError, ValueError):
            shown = _message_text(arguments)
        st.code(shown, language="json")


def render_completion(view: InteractionView) -> None:
    """The assistant's answer (text and tool calls), or the error the request ended with."""
    with st.chat_message("assistant"):
        st.caption(f"assistant · completion · {view.finish_reason or view.status}")
        if view.status != "ok" and view.error:
            st.error(view.error)
        if view.tool_calls:
            render_tool_calls(view.tool_calls)
            if view.completion:
                st.markdown(view.completion)
            return
        st.markdown(view.completion or "_(no completion text)_")


def render_facts(view: InteractionView, *, project_key: str) -> None:
    """Model, timings, tokens, labels, parameters and ids, compactly."""
    columns = st.columns(4)
    columns[0].metric("Model", view.model_key or "-")
    columns[1].metric("Latency", f"{view.latency_ms:.0f} ms" if view.latency_ms else "-")
    columns[2].metric("TTFT", f"{view.ttft_ms:.0f} ms" if view.ttft_ms else "-")
    tokens = f"{view.prompt_tokens or 0} → {view.completion_tokens or 0}"
    columns[3].metric("Tokens (prompt → completion)", tokens)
    facts = {
        "completion_id": str(view.completion_id),
        "project": project_key,
        "session_id": str(view.session_id),
        "created_at": view.created_at.isoformat(),
        "status": view.status,
        "user_id": view.user_id,
        "source": view.source,
        "A/B variant": view.ab_variant,
        "replica": view.replica,
    }
    left, right = st.columns(2)
    with left:
        st.markdown("**Labels**")
        if view.labels:
            st.table({"key": list(view.labels), "value": list(view.labels.values())})
        else:
            st.caption("No labels.")
        st.markdown("**Parameters**")
        st.json(view.params or {}, expanded=False)
    with right:
        st.markdown("**Details**")
        # "—", not "-": table cells are markdown, where a lone "-" is an empty list item.
        st.table({"field": list(facts), "value": [str(v) if v else "—" for v in facts.values()]})


def render_scores(view: InteractionView) -> None:
    """The metric values and preferences attached to this completion."""
    st.markdown("**Metric values**")
    if not view.scores:
        st.caption("No metric values yet.")
    else:
        st.table(
            {
                "metric": [score.metric.key for score in view.scores],
                "value": [f"{score.value:g}" for score in view.scores],
                "details": [score.details or "" for score in view.scores],
                "user": [score.user_id or "" for score in view.scores],
                "at": [f"{score.created_at:%Y-%m-%d %H:%M:%S}" for score in view.scores],
            }
        )
    if view.comparisons:
        st.markdown("**Preferences**")
        st.table(
            {
                "metric": [c.metric.key for c in view.comparisons],
                "preferred": [str(c.preferred_completion_id) for c in view.comparisons],
                "other": [str(c.other_completion_id) for c in view.comparisons],
                "tie": [c.tie or "" for c in view.comparisons],
            }
        )
