"""The dashboard's server, as `interlog dashboard` starts it: Streamlit serving dashboard/app.py,
and the first page's warm-up (dashboard/warmup.py), started as soon as Streamlit listens.

    python -m dashboard.streamlit_server [--host HOST] [--port PORT]

HOST and PORT default to the settings (INTERLOG_DASHBOARD_HOST, INTERLOG_DASHBOARD_PORT).
Streamlit runs headless, without usage statistics; dashboard/.streamlit/config.toml holds the
rest of its configuration.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a file rather than a module
    sys.path.insert(0, str(ROOT))

from dashboard import timing  # noqa: E402

APP = ROOT / "dashboard" / "app.py"


def streamlit_options(host: str, port: int) -> dict[str, Any]:
    """The Streamlit options that serve the dashboard on HOST:PORT (those of `streamlit run
    dashboard/app.py --server.address HOST ...`, with the names its command line gives them)."""
    return {
        "server_address": host,
        "server_port": port,
        "server_headless": True,
        "browser_gatherUsageStats": False,
    }


def serve(host: str, port: int) -> None:
    """Streamlit serving dashboard/app.py until stopped, as `streamlit run` does it, without its
    command line: building that (a click option for each of Streamlit's ~200 settings) and
    importing it took ~0.1 s of the server's start. Streamlit versions without the entry
    points used here get the command line."""
    options = streamlit_options(host, port)
    try:
        from streamlit import config
        from streamlit.web import bootstrap

        load, run = bootstrap.load_config_options, bootstrap.run
    except (ImportError, AttributeError):
        from streamlit.web import cli

        cli.main(["run", str(APP), *streamlit_args(options)], prog_name="streamlit")
        return
    # What `streamlit run` does first: the script's own config (dashboard/.streamlit) is found
    # through its path.
    config._main_script_path = str(APP)
    load(flag_options=options)
    run(str(APP), False, [], options)


def streamlit_args(options: dict[str, Any]) -> list[str]:
    """OPTIONS as `streamlit run` arguments."""
    return [
        f"--{name.replace('_', '.')}={str(value).lower() if isinstance(value, bool) else value}"
        for name, value in options.items()
    ]


def _no_components(*_args: Any, **_kwargs: Any) -> list[Any]:
    return []


def skip_component_scan() -> None:
    """The dashboard uses no custom components, so Streamlit's runtime need not look for them
    as it starts: it reads the metadata of every installed distribution (each one's METADATA
    parsed three times), 0.2-0.4 s of the server's start in this virtualenv (measured with
    py-spy). Streamlit versions without that scan are left as they are."""
    try:
        from streamlit.components.v2 import manifest_scanner
    except ImportError:
        return
    if hasattr(manifest_scanner, "scan_component_manifests"):
        manifest_scanner.scan_component_manifests = _no_components


def warm_up_once_listening() -> None:
    """Start the first page's warm-up (dashboard/warmup.py) as soon as the server listens: not
    before, since its imports would then share the GIL with Streamlit's own start and make the
    browser wait for the server (measured: the first page 0.5-0.8 s later, and 0.5 s more CPU,
    when the warm-up started with the process). Streamlit versions without the hook used here
    get the warm-up at once."""
    from dashboard import warmup

    try:
        from streamlit.web import bootstrap

        started = bootstrap._on_server_start
    except (ImportError, AttributeError):
        warmup.start()
        return

    def on_server_start(server: Any) -> None:
        timing.mark("server: listening")
        warmup.start()
        started(server)

    bootstrap._on_server_start = on_server_start


def main(argv: list[str] | None = None) -> None:
    timing.mark("server: started")
    parser = argparse.ArgumentParser(prog="python -m dashboard.streamlit_server")
    parser.add_argument("--host", help="listen address [INTERLOG_DASHBOARD_HOST]")
    parser.add_argument("--port", type=int, help="listen port [INTERLOG_DASHBOARD_PORT]")
    args = parser.parse_args(argv)

    host, port = args.host, args.port
    if not (host and port):  # the settings (pydantic) load after the server listens otherwise
        from store.settings import get_settings

        settings = get_settings()
        host, port = host or settings.dashboard_host, port or settings.dashboard_port
    skip_component_scan()
    warm_up_once_listening()
    timing.mark("server: imported Streamlit")
    serve(host, port)


if __name__ == "__main__":
    main()
