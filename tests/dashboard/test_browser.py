"""End to end in a real headless Chromium: `interlog dashboard` on a seeded store; sign in,
filter by a label, open a conversation, score it; the page and the store both show the score."""

from __future__ import annotations

import shutil
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

from store.db import create_store_engine
from store.models import MetricValue
from tests.dashboard.seeds import SeededStore, seed_dashboard_store
from tests.support import free_port, interlog_process, wait_for_http

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

    _click(browser, "a", "Interactions")
    _wait_text(browser, "16 interactions match")
    _choose(browser, "stMultiSelect", "Labels", "team")
    _choose(browser, "stMultiSelect", "team =", "billing")
    _wait_text(browser, "4 interactions match: project support-bot; team = billing.")
    browser.save_screenshot(str(tmp_path / "1-interactions.png"))

    _choose(browser, "stSelectbox", "Open interaction", "Support answer 9 for billing")
    _wait_text(browser, f"Conversation {target}")
    _wait_text(browser, "Support question 9 about billing")
    browser.save_screenshot(str(tmp_path / "2-conversation.png"))

    _click(browser, '[role="tab"]', "Score")
    number = _widget(browser, "stNumberInput", "quality value").find_element(By.TAG_NAME, "input")
    number.send_keys(Keys.CONTROL, "a")
    number.send_keys("0.65")
    details = _widget(browser, "stTextArea", "Details (optional)")
    details.find_element(By.TAG_NAME, "textarea").send_keys("short and right")
    _click(browser, "button", "Save score")
    _wait_text(browser, "short and right")
    _wait_text(browser, "0.65")
    browser.save_screenshot(str(tmp_path / "3-scored.png"))

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
