"""The dashboard in a real headless Chromium: seconds from a click in the page menu until the
page has settled (Streamlit's script finished, nothing stale, no placeholder or spinner left),
so Vega-Lite drawing the charts and the data grid drawing its rows count too.

`interlog dashboard` runs on the given store with sign-in off (loopback). The first view builds
the DuckDB copy; then each page is visited twice: "first visit" (its own queries not cached yet),
and "again" after the data-version period has passed (the version is looked up again, the data
did not change, so the page comes from the caches). Needs Debian's chromium and chromium-driver.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import services

CHROME_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--window-size=1500,1100",
)  # fmt: skip
SETTLED_JS = """
const app = document.querySelector('[data-testid="stApp"]');
return !!app && app.getAttribute('data-test-script-state') === 'notRunning'
    && !document.querySelector('[data-stale="true"]')
    && !document.querySelector('[data-testid="stSkeleton"]')
    && !document.querySelector('[data-testid="stSpinner"]');
"""
#: (menu entry, text the page shows once drawn)
PAGES = (
    ("Interactions", "interactions match"),
    ("Overview", "Over time, by model"),
    ("Metrics", "Define a metric"),
    ("A/B tests", "m1-vs-m2"),
    ("Export", "interactions match"),
)
RERUN_START = 0.15  # a click's rerun starts this long after it, at most


def available() -> bool:
    return bool(shutil.which("chromium") and shutil.which("chromedriver"))


def measure(database_url: str) -> dict[str, Any]:
    """{"first_view": s, "pages": [{page, first, again}]}."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.support.ui import WebDriverWait

    from dashboard.context import REFRESH_SECONDS

    def settled(driver: WebDriver, text: str) -> None:
        WebDriverWait(driver, 600, poll_frequency=0.05).until(
            lambda d: text in d.execute_script("return document.body.innerText")
        )
        streak = 0

        def still(d: WebDriver) -> bool:
            nonlocal streak
            streak = streak + 1 if d.execute_script(SETTLED_JS) else 0
            return streak >= 2

        WebDriverWait(driver, 600, poll_frequency=0.05).until(still)

    def visit(driver: WebDriver, page: str, text: str) -> float:
        started = time.perf_counter()
        links = driver.find_elements(By.CSS_SELECTOR, "a")  # their text starts with an icon name
        link = next(a for a in links if a.text.strip().endswith(page))
        link.click()
        time.sleep(RERUN_START)
        settled(driver, text)
        return time.perf_counter() - started - 0.05  # the last poll's interval

    port = services.free_port()
    env = {"INTERLOG_DATABASE_URL": database_url, "INTERLOG_DASHBOARD_AUTH": "false"}
    command = [sys.executable, "-m", "ingest", "dashboard", "--host", "127.0.0.1"]
    options = Options()
    options.binary_location = str(shutil.which("chromium"))
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    with (
        tempfile.TemporaryDirectory(prefix="interlog-bench-browser-") as tmp,
        services.process(
            [*command, "--port", str(port)], log=Path(tmp) / "dashboard.log", env=env
        ) as server,
    ):
        url = f"http://127.0.0.1:{port}"
        services.wait_or_explain(f"{url}/_stcore/health", server, Path(tmp) / "dashboard.log", 120)
        driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
        try:
            started = time.perf_counter()
            driver.get(url)
            settled(driver, "Over time, by model")
            first_view = time.perf_counter() - started
            first = {page: visit(driver, page, text) for page, text in PAGES}
            time.sleep(REFRESH_SECONDS + 1)
            again = {page: visit(driver, page, text) for page, text in PAGES}
        finally:
            driver.quit()
    return {
        "first_view": first_view,
        "pages": [{"page": page, "first": first[page], "again": again[page]} for page, _ in PAGES],
    }
