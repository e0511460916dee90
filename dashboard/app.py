"""Interlog dashboard (Streamlit). Pages call store functions only; no SQL lives here."""

from __future__ import annotations

import streamlit as st

st.set_page_config(page_title="Interlog", layout="wide")
st.title("Interlog")
st.caption("LLM interaction logging and analytics")
