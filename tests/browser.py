"""Open a report page in headless Chromium and read back what a person would see.

Debian's chromium and chromedriver (installed by `make test` as root, or .ci/system-deps) are driven by Selenium with both paths given,
so Selenium Manager never runs and nothing downloads a browser. Screenshots are test artefacts in
build/test-artefacts/ (ignored by git), for a person to look at.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from ci_skips import require_program
from repo import ROOT

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTEFACTS = ROOT / "build" / "test-artefacts"

_IMAGES_DONE = "return Array.from(document.images).every(i => i.complete)"
_BROKEN = "return Array.from(document.images).filter(i => !(i.naturalWidth > 0)).map(i => i.getAttribute('src'))"
_NUMBERS = ("return Object.fromEntries(Array.from(document.querySelectorAll('[data-key]'))"
            ".map(e => [e.dataset.key, e.textContent]))")


@dataclass
class Seen:
    numbers: dict  # data-key -> text shown
    images: int
    broken: list  # src of every <img> that did not load
    console: list  # console messages at level SEVERE
    text: str


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the session; skips visibly off CI when Debian's chromium is absent."""
    require_program(CHROMIUM.is_file() and CHROMEDRIVER.is_file(),
                    f"Debian's chromium ({CHROMIUM}) or chromedriver ({CHROMEDRIVER})", "chromium chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1000"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def look(driver, url: str, screenshot: str) -> Seen:
    """Load url, wait for every image to settle, read the page, and save a full-page screenshot."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get_log("browser")  # drop messages of earlier pages
    driver.get(url)
    WebDriverWait(driver, 20).until(lambda d: d.execute_script("return document.readyState") == "complete")
    WebDriverWait(driver, 20).until(lambda d: d.execute_script(_IMAGES_DONE))
    seen = Seen(driver.execute_script(_NUMBERS), len(driver.find_elements("tag name", "img")),
                driver.execute_script(_BROKEN), [e["message"] for e in driver.get_log("browser")
                                                 if e["level"] == "SEVERE"],
                driver.find_element("tag name", "body").text)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, min(max(height, 600), 16000) + 200)  # + the window's own chrome
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(ARTEFACTS / screenshot))
    driver.set_window_size(1280, 1000)
    return seen
