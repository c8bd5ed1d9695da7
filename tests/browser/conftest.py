"""Fixtures for the browser tests: a real `streamlit run dashboard.py` server and Debian's
Chromium driven by Playwright.

Chromium is taken from the PATH (`apt-get install chromium`); `playwright install` is never
needed. Without Chromium (or the playwright package) these tests are skipped with the
reason, unless REQUIRE_BROWSER=1 (set by .ci/run), which turns the skip into a failure.

Screenshots go to a temporary folder (its path is printed at the end of the run), so a test
run never changes a tracked file; `python -m pytest tests/browser --update-screenshots`
writes them into docs/screenshots, for the README.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from browser_ui import DOCS_SCREENSHOTS, open_page, save_screenshot
from loadtest.server import Server

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


SCREENSHOTS_WRITTEN = pytest.StashKey[list[Path]]()


def _unavailable(reason: str):
    if os.environ.get("REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason} (REQUIRE_BROWSER=1 makes a missing browser a failure)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = shutil.which("chromium")
    if path is None:
        _unavailable("Chromium not found on PATH: apt-get install chromium")
    return path


@pytest.fixture(scope="session")
def axe_script(chromium_path) -> Path:
    """axe-core's axe.min.js, from the npm package of package.json (`npm ci`)."""
    path = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"
    if not path.is_file():
        _unavailable("axe-core is not installed: run `npm ci` in the repository (package.json)")
    return path


@pytest.fixture(scope="session")
def server(chromium_path) -> Server:
    """`streamlit run dashboard.py` on a free port (loadtest's Server); stopped at the end."""
    server = Server()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser(chromium_path):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed: pip install playwright")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, server):
    """A fresh browser context (so a fresh Streamlit session) on the app's first page."""
    context, page = open_page(browser, server.url)
    yield page
    context.close()


@pytest.fixture(scope="session")
def screenshot_dir(request, tmp_path_factory) -> Path:
    """docs/screenshots with --update-screenshots, else a fresh temporary folder."""
    if request.config.getoption("--update-screenshots"):
        return DOCS_SCREENSHOTS
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture
def screenshot(request, screenshot_dir):
    """``screenshot(page, name, height=None)``: save the page as <screenshot_dir>/<name>.png
    (the paths written are listed at the end of the run)."""
    written = request.config.stash.setdefault(SCREENSHOTS_WRITTEN, [])

    def take(page, name: str, height: int | None = None) -> Path:
        path = save_screenshot(page, name, height, folder=screenshot_dir)
        written.append(path)
        return path

    return take


def pytest_terminal_summary(terminalreporter, config):
    written = config.stash.get(SCREENSHOTS_WRITTEN, [])
    if not written:
        return
    folders = sorted({str(path.parent) for path in written})
    terminalreporter.write_sep("-", "screenshots")
    terminalreporter.write_line(f"{len(written)} written to {', '.join(folders)}: "
                                f"{', '.join(path.name for path in written)}")
    if any(path.parent != DOCS_SCREENSHOTS for path in written):
        terminalreporter.write_line("(python -m pytest tests/browser --update-screenshots "
                                    "writes them into docs/screenshots)")
