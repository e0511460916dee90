"""End to end in a real headless Chromium: `interlog dashboard` on a seeded store; sign in,
filter by a label, open a conversation, score it; the page and the store both show the score.
Screenshots are taken only once the page has settled (the script finished, nothing stale, no
loading placeholder). A second test makes the README's screenshot on the demo dataset:

    INTERLOG_README_SCREENSHOT=docs/screenshot-interactions.png \
        .venv/bin/pytest tests/dashboard/test_browser.py -k readme
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait
from sqlalchemy import select
from sqlmodel import col

from store import analytics
from store.analytics.lake import drop_lake
from store.db import create_store_engine
from store.filters import Filters
from store.keys import Principal
from store.models import MetricValue
from tests.dashboard.seeds import SeededStore, seed_dashboard_store
from tests.support import free_port, interlog_env, interlog_process, wait_for_http

CHROME_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--window-size=1500,1100",
)
WAIT_SECONDS = 20
SETTLED_POLLS = 4  # consecutive settled polls, 0.25 s apart
README_SIZE = (1500, 2080)

pytestmark = pytest.mark.slow


def _executable(*names: str) -> str:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    pytest.fail(
        f"none of {names} is installed: scripts/test.sh installs Debian's chromium and "
        "chromium-driver (apt-get install -y chromium chromium-driver)",
        pytrace=False,
    )


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    """Headless Chromium driven by the distribution's chromedriver (nothing is downloaded)."""
    options = Options()
    options.binary_location = _executable("chromium", "chromium-browser")
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(
        service=Service(executable_path=_executable("chromedriver")), options=options
    )
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def dashboard(sqlite_url: str, tmp_path: Path) -> Iterator[tuple[str, SeededStore]]:
    """`interlog dashboard` on a seeded SQLite store, on a free loopback port."""
    engine = create_store_engine(sqlite_url)
    try:
        seeded = seed_dashboard_store(engine)
    finally:
        engine.dispose()
    port = free_port()
    env = {"INTERLOG_DATABASE_URL": sqlite_url}
    args = ["dashboard", "--host", "127.0.0.1", "--port", str(port)]
    with interlog_process(args, env=env, cwd=tmp_path, log=tmp_path / "dashboard.log") as process:
        base = f"http://127.0.0.1:{port}"
        wait_for_http(f"{base}/_stcore/health", timeout=60, process=process)
        yield base, seeded


def _wait_text(driver: WebDriver, text: str) -> None:
    WebDriverWait(driver, WAIT_SECONDS, poll_frequency=0.2).until(
        lambda d: d.execute_script("return document.body.innerText.includes(arguments[0])", text),
        message=f"page never showed {text!r}",
    )


SETTLED_JS = """
const app = document.querySelector('[data-testid="stApp"]');
return !!app && app.getAttribute('data-test-script-state') === 'notRunning'
    && !document.querySelector('[data-stale="true"]')
    && !document.querySelector('[data-testid="stSkeleton"]')
    && !document.querySelector('[data-testid="stSpinner"]');
"""


def _settled(driver: WebDriver) -> None:
    """Wait until Streamlit finished the run and drew everything (stable for a second): the
    script is not running, no element is stale, no loading placeholder or spinner is left."""
    streak = 0

    def settled(d: WebDriver) -> bool:
        nonlocal streak
        streak = streak + 1 if d.execute_script(SETTLED_JS) else 0
        return streak >= SETTLED_POLLS

    WebDriverWait(driver, WAIT_SECONDS, poll_frequency=0.25).until(
        settled, message="the page never settled"
    )


def _screenshot(driver: WebDriver, path: Path) -> None:
    _settled(driver)
    driver.save_screenshot(str(path))


def _widget(driver: WebDriver, testid: str, label: str) -> WebElement:
    """The Streamlit widget container of a kind (data-testid) whose label reads `label`."""

    def find(d: WebDriver) -> WebElement | bool:
        for element in d.find_elements(By.CSS_SELECTOR, f'[data-testid="{testid}"]'):
            if element.text.split("\n")[0].strip() == label:
                return element
        return False

    found = WebDriverWait(driver, WAIT_SECONDS).until(find, message=f"no {testid} {label!r}")
    assert isinstance(found, WebElement)
    return found


def _choose(driver: WebDriver, testid: str, label: str, text: str) -> None:
    """Type into a select / multiselect and take the first matching option."""
    box = _widget(driver, testid, label).find_element(By.TAG_NAME, "input")
    box.click()
    box.send_keys(text)
    WebDriverWait(driver, WAIT_SECONDS).until(
        lambda d: any(text in o.text for o in d.find_elements(By.CSS_SELECTOR, '[role="option"]'))
    )
    box.send_keys(Keys.ENTER)
    box.send_keys(Keys.ESCAPE)


def _click(driver: WebDriver, css: str, text: str) -> None:
    """Click the first visible element matching `css` whose text ends with `text`."""

    def find(d: WebDriver) -> WebElement | bool:
        for element in d.find_elements(By.CSS_SELECTOR, css):
            if element.text.strip().endswith(text) and element.is_displayed():
                return element
        return False

    element = WebDriverWait(driver, WAIT_SECONDS).until(find, message=f"no {css} {text!r}")
    assert isinstance(element, WebElement)
    element.click()


def test_sign_in_filter_open_and_score_in_a_real_browser(
    browser: WebDriver, dashboard: tuple[str, SeededStore], sqlite_url: str, tmp_path: Path
) -> None:
    base, seeded = dashboard
    try:
        _sign_in_filter_open_and_score(browser, base, seeded, sqlite_url, tmp_path)
    except BaseException:
        browser.save_screenshot(str(tmp_path / "failure.png"))
        raise


def _sign_in_filter_open_and_score(
    browser: WebDriver, base: str, seeded: SeededStore, sqlite_url: str, tmp_path: Path
) -> None:
    target = seeded.billing_ids[3]  # index 9: not scored yet
    browser.get(base)
    key_input = _widget(browser, "stTextInput", "API key").find_element(By.TAG_NAME, "input")
    key_input.send_keys(seeded.support_key)
    _click(browser, "button", "Sign in")
    _wait_text(browser, "Signed in as project support-bot")
    # Viewer mode (dashboard/.streamlit/config.toml): no Deploy button, even on loopback.
    assert browser.find_elements(By.CSS_SELECTOR, '[data-testid="stToolbar"]')
    assert not browser.find_elements(By.CSS_SELECTOR, '[data-testid="stAppDeployButton"]')

    _click(browser, "a", "Interactions")
    _wait_text(browser, "16 interactions match")
    _choose(browser, "stMultiSelect", "Labels", "team")
    _choose(browser, "stMultiSelect", "team =", "billing")
    _wait_text(browser, "4 interactions match: project support-bot; team = billing.")
    _screenshot(browser, tmp_path / "1-interactions.png")

    _choose(browser, "stSelectbox", "Open interaction", "Support answer 9 for billing")
    _wait_text(browser, f"Conversation {target}")
    _wait_text(browser, "Support question 9 about billing")
    _screenshot(browser, tmp_path / "2-conversation.png")

    _click(browser, '[role="tab"]', "Score")
    number = _widget(browser, "stNumberInput", "quality value").find_element(By.TAG_NAME, "input")
    number.send_keys(Keys.CONTROL, "a")
    number.send_keys("0.65")
    details = _widget(browser, "stTextArea", "Details (optional)")
    details.find_element(By.TAG_NAME, "textarea").send_keys("short and right")
    _click(browser, "button", "Save score")
    _wait_text(browser, "short and right")
    _wait_text(browser, "0.65")
    _screenshot(browser, tmp_path / "3-scored.png")

    engine = create_store_engine(sqlite_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                select(col(MetricValue.value), col(MetricValue.details)).where(
                    col(MetricValue.completion_id) == uuid.UUID(target)
                )
            ).all()
    finally:
        engine.dispose()
    assert [(value, details) for value, details in rows] == [(0.65, "short and right")]
    for name in ("1-interactions.png", "2-conversation.png", "3-scored.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def demo_dashboard(tmp_path: Path) -> Iterator[tuple[str, str, str]]:
    """`interlog demo` (400 interactions) into a fresh store, then `interlog dashboard` on it:
    (dashboard URL, admin key, database URL)."""
    database_url = f"sqlite:///{tmp_path / 'demo.db'}"
    seeded = subprocess.run(
        [sys.executable, "-m", "ingest", "demo", "--interactions", "400"],
        env=interlog_env({"INTERLOG_DATABASE_URL": database_url}),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert seeded.returncode == 0, seeded.stdout + seeded.stderr
    found = re.search(r"dashboard admin key \(shown once\): (\S+)", seeded.stdout)
    assert found, seeded.stdout
    port = free_port()
    args = ["dashboard", "--host", "127.0.0.1", "--port", str(port)]
    env = {"INTERLOG_DATABASE_URL": database_url}
    with interlog_process(args, env=env, cwd=tmp_path, log=tmp_path / "dashboard.log") as process:
        base = f"http://127.0.0.1:{port}"
        wait_for_http(f"{base}/_stcore/health", timeout=60, process=process)
        yield base, found.group(1), database_url


def _conversation_to_show(database_url: str, filters: Filters) -> str:
    """The completion text of a scored one-turn conversation on the first page (newest first),
    which fits in the screenshot with its scores; unique on the page, so typing it into the
    "Open interaction" picker finds that row."""
    engine = create_store_engine(database_url)
    try:
        frame = analytics.interactions(engine, filters, scope=Principal(is_admin=True), limit=50)
    finally:
        drop_lake(engine)
        engine.dispose()
    turns = frame["messages"].map(lambda text: sum(m["role"] == "user" for m in json.loads(text)))
    unique = ~frame["completion"].duplicated(keep=False)
    scored = frame["quality"].notna() if "quality" in frame else unique
    for wanted in (unique & scored & (turns == 1), unique & (turns == 1), unique):
        if wanted.any():
            return " ".join(str(frame["completion"][wanted].iloc[0]).split())[:60]
    pytest.fail("no completion on the first page is unique")


def test_readme_screenshot_of_the_demo_interactions_page(
    browser: WebDriver, demo_dashboard: tuple[str, str, str], tmp_path: Path
) -> None:
    """The Interactions page of the demo, filtered by a label, a conversation open; the file is
    copied to $INTERLOG_README_SCREENSHOT when that is set."""
    base, admin_key, database_url = demo_dashboard
    browser.set_window_size(*README_SIZE)
    browser.get(base)
    key_input = _widget(browser, "stTextInput", "API key").find_element(By.TAG_NAME, "input")
    key_input.send_keys(admin_key)
    _click(browser, "button", "Sign in")
    _wait_text(browser, "Signed in as admin")
    _click(browser, "a", "Interactions")
    _wait_text(browser, "interactions match: all interactions.")
    _choose(browser, "stMultiSelect", "Labels", "team")
    _choose(browser, "stMultiSelect", "team =", "billing")
    _choose(browser, "stSelectbox", "Status", "ok")
    _wait_text(browser, "interactions match: team = billing; status ok.")
    _settled(browser)
    completion = _conversation_to_show(database_url, Filters(labels=["team=billing"], status="ok"))
    _choose(browser, "stSelectbox", "Open interaction", completion)
    browser.execute_script("document.activeElement.blur()")  # no text cursor in the picture
    _wait_text(browser, "Conversation ")
    _wait_text(browser, "Metric values")
    path = tmp_path / "readme-interactions.png"
    _screenshot(browser, path)
    text = browser.execute_script("return document.body.innerText")
    assert "Session" in text and "Score" in text and "billing" in text
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    target = os.environ.get("INTERLOG_README_SCREENSHOT")
    if target:
        shutil.copyfile(path, target)
