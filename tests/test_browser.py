"""The workbench in a real browser: headless Chromium (Debian's chromium and
chromium-driver) driven by Selenium through the pilot federation that `dsgo demo` runs.

Screenshots of each page land in ``artifacts/browser/`` (ignored by git), for people to
look at what the test saw.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_demo import free_block

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "artifacts" / "browser"
pytestmark = pytest.mark.integration
#: what works on a machine without a display or a network (see shared notes)
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,1200",
)


def _need(binary: str) -> str:
    found = shutil.which(binary)
    if found is None:
        if os.environ.get("CI"):
            pytest.fail(
                f"{binary} is not installed; .ci/run installs it (apt-get install chromium chromium-driver)"
            )
        pytest.skip(f"{binary} is not installed (apt-get install chromium chromium-driver)")
    return found


@pytest.fixture
def pilot(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """`dsgo demo` serving the pilot on free ports: (the municipality's URL, the password)."""
    shutil.copytree(
        ROOT / "examples" / "pilot", tmp_path / "examples" / "pilot", ignore=shutil.ignore_patterns("state")
    )
    base = free_block()
    log = tmp_path / "demo.log"
    with log.open("wb") as out:
        argv = [sys.executable, "-m", "gateway.cli", "demo", "--root", str(tmp_path), "--port", str(base)]
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while "serving until Ctrl-C" not in log.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        password = re.search(r"password '([^']+)'", log.read_text())
        assert password, log.read_text()
        yield f"http://127.0.0.1:{base + 3}", password.group(1)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def browser() -> Iterator[object]:
    chromium, driver = _need("chromium"), _need("chromedriver")
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (*CHROMIUM_FLAGS, "--user-data-dir=" + tempfile.mkdtemp(prefix="dsgo-chromium-")):
        options.add_argument(flag)
    browser = webdriver.Chrome(options=options, service=webdriver.ChromeService(driver))
    browser.implicitly_wait(10)
    try:
        yield browser
    finally:
        browser.quit()


def test_a_person_logs_in_follows_a_link_to_another_partys_building_asks_and_logs_out(
    pilot: tuple[str, str], browser: object
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.wait import WebDriverWait

    assert isinstance(browser, WebDriver)
    url, password = pilot
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def shot(name: str) -> None:
        browser.save_screenshot(str(ARTIFACTS / f"{name}.png"))

    def arrive(part: str) -> None:  # a click returns before the next page has loaded
        WebDriverWait(browser, 20).until(expected_conditions.url_contains(part))

    browser.get(url + "/workbench/")
    assert "/login" in browser.current_url
    shot("1-login")
    browser.find_element(By.ID, "username").send_keys("demo")
    browser.find_element(By.ID, "password").send_keys(password)
    browser.find_element(By.ID, "login").click()
    arrive("/workbench/")
    assert browser.current_url == url + "/workbench/"
    assert "Woonstichting De Nieuwe Stad" in browser.find_element(By.TAG_NAME, "main").text
    shot("2-home")

    corporation = browser.find_element(By.ID, "party-EU.EORI.NL000000102")
    corporation.find_element(By.LINK_TEXT, "bot:Building").click()
    arrive("collections")
    shot("3-collection")
    browser.find_element(By.LINK_TEXT, "Zaaiersweg 12").click()
    arrive("id/home/")
    page = browser.find_element(By.TAG_NAME, "main").text
    assert "energy label class\nF" in page or "energy label class F" in page
    assert "Withheld by Woonstichting De Nieuwe Stad" in browser.find_element(By.ID, "withheld").text
    shot("4-building")

    browser.find_element(By.LINK_TEXT, "Federated query").click()
    arrive("/workbench/query")
    browser.find_element(By.LINK_TEXT, "labels-and-insulation").click()  # the first is another
    arrive("example=labels-and-insulation")
    browser.find_element(By.ID, "ask").click()
    WebDriverWait(browser, 30).until(expected_conditions.presence_of_element_located((By.ID, "rows")))
    assert browser.find_element(By.ID, "rows").text == "3 row(s)"
    bars = browser.find_elements(By.CSS_SELECTOR, "#report svg g.node")
    assert len(bars) == 3
    assert "Bouwbedrijf De Vries B.V." in browser.find_element(By.ID, "report").text
    shot("5-query")

    browser.find_element(By.ID, "logout").click()
    arrive("/login")
    browser.get(url + "/workbench/")
    assert "/login" in browser.current_url
    shot("6-logged-out")
