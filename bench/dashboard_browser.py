"""The dashboard in a real headless Chromium, the way a user sees it: a page counts as shown
once it has settled (Streamlit's script finished, nothing stale, no placeholder or spinner left,
every chart drawn) with the text it shows once its data is in, so Vega-Lite drawing the charts
and the data grid drawing its rows count too.

bench/dashboard.py starts the browser before the dashboard process, so that the browser's own
start-up is not counted as the dashboard's. Needs Debian's chromium and chromium-driver
(`apt-get install -y chromium chromium-driver`: nothing is downloaded by Selenium).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

CHROME_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--window-size=1500,1100",
)  # fmt: skip
#: True once the page has settled: the script finished, nothing stale or loading, and every
#: Vega-Lite chart has drawn its canvas or SVG.
SETTLED_JS = """
const app = document.querySelector('[data-testid="stApp"]');
const charts = [...document.querySelectorAll('[data-testid="stVegaLiteChart"]')];
return !!app && app.getAttribute('data-test-script-state') === 'notRunning'
    && !document.querySelector('[data-stale="true"]')
    && !document.querySelector('[data-testid="stSkeleton"]')
    && !document.querySelector('[data-testid="stSpinner"]')
    && charts.every(chart => chart.querySelector('canvas, svg'));
"""
#: (menu entry, text the page shows once its data is in)
OVERVIEW = ("Overview", "Over time, by model")
OTHER_PAGES = (
    ("Interactions", "interactions match"),
    ("Compare", "Enter two completion ids"),
    ("Metrics", "Define a metric"),
    ("A/B tests", " · "),  # each test's title: "key · project · status" (expanded or not)
    ("Export", "interactions match"),
)
POLL_SECONDS = 0.05
SETTLED_POLLS = 2  # consecutive settled polls: a rerun starting in between resets the count
RERUN_START = 0.15  # a click's rerun starts this long after it, at most
TIMEOUT = 600


def missing() -> str | None:
    """None when chromium and chromedriver are installed, else how to install them."""
    if shutil.which("chromium") and shutil.which("chromedriver"):
        return None
    return "needs Debian's chromium and chromedriver: apt-get install -y chromium chromium-driver"


@contextmanager
def chromium() -> Iterator[WebDriver]:
    """A headless Chromium driven by the distribution's chromedriver, quit at the end."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = str(shutil.which("chromium"))
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    try:
        driver.set_page_load_timeout(TIMEOUT)
        driver.get("about:blank")  # the browser is up before the dashboard starts
        yield driver
    finally:
        driver.quit()


def settled(driver: WebDriver, text: str) -> None:
    """Wait until the page shows TEXT and has settled (SETTLED_JS, SETTLED_POLLS in a row)."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, TIMEOUT, poll_frequency=POLL_SECONDS).until(
        lambda d: text in d.execute_script("return document.body.innerText")
    )
    streak = 0

    def still(d: WebDriver) -> bool:
        nonlocal streak
        streak = streak + 1 if d.execute_script(SETTLED_JS) else 0
        return streak >= SETTLED_POLLS

    WebDriverWait(driver, TIMEOUT, poll_frequency=POLL_SECONDS).until(still)


def first_page(driver: WebDriver, url: str) -> None:
    """Open the dashboard at URL and wait until its first page (Overview) is shown."""
    driver.get(url)
    settled(driver, OVERVIEW[1])


def visit(driver: WebDriver, page: str, text: str) -> float:
    """Seconds from a click on PAGE in the page menu until it is shown with its data."""
    from selenium.webdriver.common.by import By

    started = time.perf_counter()
    links = driver.find_elements(By.CSS_SELECTOR, "a")  # their text starts with an icon name
    link = next(a for a in links if a.text.strip().endswith(page))
    link.click()
    time.sleep(RERUN_START)
    settled(driver, text)
    # The last settled poll only confirms the one before: the page was shown one poll earlier.
    return time.perf_counter() - started - POLL_SECONDS * (SETTLED_POLLS - 1)
