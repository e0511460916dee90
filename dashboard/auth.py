"""Sign-in with an Interlog API key; sign-in may be switched off only on a loopback address."""

from __future__ import annotations

import ipaddress

import streamlit as st

from dashboard.context import PRINCIPAL_KEY, engine_for
from store.keys import Principal, authenticate_key
from store.settings import Settings

LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    name = host.strip().strip("[]").lower()
    if name in LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def listen_address(settings: Settings) -> str:
    """The address the server listens on: Streamlit's own option, else the setting."""
    configured = st.get_option("server.address")
    return str(configured) if configured else settings.dashboard_host


def require_principal(settings: Settings) -> Principal:
    """The signed-in principal; otherwise render the sign-in form and stop this run."""
    if not settings.dashboard_auth:
        address = listen_address(settings)
        if not is_loopback(address):
            st.error(
                f"Sign-in is switched off (INTERLOG_DASHBOARD_AUTH=false) but the dashboard "
                f"listens on {address}, which other machines can reach. Switch sign-in back on, "
                "or listen on 127.0.0.1."
            )
            st.stop()
        principal = Principal(is_admin=True)
        st.session_state[PRINCIPAL_KEY] = principal
        return principal
    current = st.session_state.get(PRINCIPAL_KEY)
    if isinstance(current, Principal):
        return current
    _sign_in_form(settings)
    st.stop()
    raise AssertionError("unreachable")  # st.stop() raises


def _sign_in_form(settings: Settings) -> None:
    st.title("Interlog")
    st.subheader("Sign in")
    st.caption("Use an Interlog API key: a project key shows its project, an admin key shows all.")
    with st.form("sign_in"):
        secret = st.text_input("API key", type="password", key="sign_in_key")
        submitted = st.form_submit_button("Sign in")
    if not submitted:
        return
    principal = authenticate_key(
        engine_for(settings.database_url), secret.strip(), admin_key=settings.admin_key
    )
    if principal is None:
        st.error("Unknown or revoked API key.")
        return
    st.session_state[PRINCIPAL_KEY] = principal
    st.rerun()


def sign_out() -> None:
    st.session_state.pop(PRINCIPAL_KEY, None)
