"""Interactions: a paginated table of the filtered rows; a selected row opens its conversation,
its session's turns in order, and a form to score it."""

from __future__ import annotations

import json
import math
import uuid
from typing import Any

import pandas as pd
import streamlit as st

from dashboard import queries
from dashboard.context import PageContext, page_context
from dashboard.conversation_view import (
    render_completion,
    render_facts,
    render_messages,
    render_scores,
)
from dashboard.filter_bar import current_filters
from dashboard.scoring import render_score_form

EMPTY = "No interactions match these filters."
PAGE_SIZES = [25, 50, 100]
OPEN_KEY = "open_completion"
PAGE_IDS_KEY = "interactions_page_ids"
SNIPPET = 90
NONE = ""


def _snippet(text: Any) -> str:
    if not isinstance(text, str):
        return ""
    flat = " ".join(text.split())
    return flat if len(flat) <= SNIPPET else flat[: SNIPPET - 1] + "…"


def _last_user_text(messages_json: Any) -> str:
    try:
        messages = json.loads(messages_json) if isinstance(messages_json, str) else messages_json
    except ValueError:
        return ""
    for message in reversed(messages or []):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                texts = [p.get("text", "") for p in content if isinstance(p, dict)]
                images = sum(
                    1 for p in content if isinstance(p, dict) and p.get("type") == "image_url"
                )
                return " ".join(texts) + (f" [{images} image(s)]" if images else "")
            return str(content or "")
    return ""


def _answer_text(completion: Any, tool_calls_json: Any) -> str:
    """The answer's text, or the tools it called (an answer of tool calls has no text)."""
    if isinstance(completion, str) and completion.strip():
        return _snippet(completion)
    try:
        calls = json.loads(tool_calls_json) if isinstance(tool_calls_json, str) else tool_calls_json
    except ValueError:
        return ""
    names = [
        str(call["function"].get("name") or "?")
        for call in calls or []
        if isinstance(call, dict) and isinstance(call.get("function"), dict)
    ]
    return _snippet("🛠️ " + ", ".join(names)) if names else ""


def _labels_text(labels_json: Any) -> str:
    try:
        labels = json.loads(labels_json) if isinstance(labels_json, str) else labels_json
    except ValueError:
        return ""
    return ", ".join(f"{k}={v}" for k, v in (labels or {}).items())


def _table(frame: pd.DataFrame, metric_keys: list[str]) -> pd.DataFrame:
    table = pd.DataFrame(
        {
            "created_at": frame["created_at"],
            "project": frame["project"],
            "model": frame["model"],
            "status": frame["status"],
            "labels": frame["labels"].map(_labels_text),
            "prompt": frame["messages"].map(lambda m: _snippet(_last_user_text(m))),
            "completion": [
                _answer_text(completion, calls)
                for completion, calls in zip(
                    frame["completion"],
                    frame["tool_calls"] if "tool_calls" in frame else [None] * len(frame),
                    strict=True,
                )
            ],
            "latency_ms": frame["latency_ms"],
            "tokens": frame["prompt_tokens"].fillna(0) + frame["completion_tokens"].fillna(0),
        }
    )
    for key in metric_keys:
        column = key if key in frame.columns else f"metric_{key}"
        if column in frame.columns:
            table[key] = frame[column]
    table["completion_id"] = frame["completion_id"]
    return table


def _on_table_select() -> None:
    state = st.session_state.get("interactions_table")
    ids = st.session_state.get(PAGE_IDS_KEY) or []
    rows = state.selection.rows if state is not None else []
    if rows and rows[0] < len(ids):
        st.session_state[OPEN_KEY] = ids[rows[0]]


def _render_session(ctx: PageContext, session_id: uuid.UUID, current: uuid.UUID) -> None:
    turns = queries.session_turns(ctx, session_id)
    st.caption(f"Session {session_id}: {len(turns)} turn(s), oldest first.")
    for number, turn in enumerate(turns, start=1):
        marker = " (this completion)" if turn.completion_id == current else ""
        st.markdown(
            f"**Turn {number}**{marker} · {turn.created_at:%Y-%m-%d %H:%M:%S} UTC · "
            f"{turn.model_key or '-'}"
        )
        user_text = _last_user_text(turn.messages)
        with st.chat_message("user"):
            st.markdown(user_text or "_(no user message)_")
        render_completion(turn)


def _render_open(ctx: PageContext, completion_id: str) -> None:
    view = queries.find_conversation(ctx, completion_id)
    if view is None:
        st.warning(f"Completion {completion_id} is not visible to you (or does not exist).")
        return
    project = next((p.key for p in ctx.projects if p.id == view.project_id), str(view.project_id))
    st.subheader(f"Conversation {view.completion_id}")
    conversation, session, score = st.tabs(["Conversation", "Session", "Score"])
    with conversation:
        render_facts(view, project_key=project)
        render_messages(ctx.engine, view.messages)
        render_completion(view)
        render_scores(view)
    with session:
        _render_session(ctx, view.session_id, view.completion_id)
    with score:
        render_scores(view)
        if render_score_form(ctx, project_id=view.project_id, completion_id=view.completion_id):
            st.rerun()


ctx = page_context()
selection = current_filters()
filters = selection.filters
st.title("Interactions")

requested = st.query_params.get("completion")
if requested and st.session_state.get("_opened_from_url") != requested:
    st.session_state[OPEN_KEY] = requested
    st.session_state["_opened_from_url"] = requested

total = queries.count_interactions(ctx, filters)
if total == 0:
    st.info(EMPTY)
else:
    controls = st.columns([1, 1, 3])
    size = controls[0].selectbox("Rows per page", PAGE_SIZES, index=1, key="page_size")
    pages = max(1, math.ceil(total / size))
    page = int(controls[1].number_input("Page", 1, pages, 1, key="page_number"))
    controls[2].caption(f"{total:,} interactions match: {selection.description}.")
    frame = queries.interactions_page(ctx, filters, limit=size, offset=(page - 1) * size)
    metric_keys = sorted({m.key for m in queries.visible_metrics(ctx)})
    table = _table(frame, metric_keys)
    ids = table["completion_id"].tolist()
    st.session_state[PAGE_IDS_KEY] = ids
    st.dataframe(
        table.drop(columns=["completion_id"]),
        hide_index=True,
        width="stretch",
        on_select=_on_table_select,
        selection_mode="single-row",
        key="interactions_table",
        column_config={"created_at": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm:ss")},
    )
    labels = {
        cid: f"{created:%m-%d %H:%M:%S} · {model or '-'} · {completion}"
        for cid, created, model, completion in zip(
            ids, table["created_at"], table["model"], table["completion"], strict=True
        )
    }
    options = [NONE, *ids]
    opened = st.session_state.get(OPEN_KEY)
    if opened and opened not in options:
        options.append(opened)
    st.selectbox(
        "Open interaction",
        options,
        key=OPEN_KEY,
        format_func=lambda cid: labels.get(cid, cid) if cid else "Select a row or pick one here",
    )

opened = st.session_state.get(OPEN_KEY)
if opened:
    _render_open(ctx, str(opened))
